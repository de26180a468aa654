// The floor under any Node.js HTTP gateway on this machine: node:http answering
// every request with one fixed response, with no routing, authentication,
// database or logging. Its CPU per request is what HTTP alone costs.
import http from 'node:http';

const body = Buffer.from(process.env.FLOOR_BODY_BASE64 ?? '', 'base64');
const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length };

http
  .createServer((request, response) => {
    request.resume();
    response.writeHead(200, headers);
    response.end(body);
  })
  .listen(Number(process.env.PORT), process.env.HOST);
