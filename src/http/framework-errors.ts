// Problems for what goes wrong before a route runs: bytes Node cannot parse
// as HTTP (answered on the raw socket), URLs Fastify cannot decode, and
// 4xx errors raised by plugins (the static files of /docs).
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError, sendProblem } from './problem.js';

/** The problem for a Node 'clientError' (the request never reached Fastify). */
export function problemForClientError(error: { code?: string }): ProblemError {
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ProblemError('requestTimeout', 'The request was not received in time; the connection is closed.');
    case 'HPE_HEADER_OVERFLOW':
      return new ProblemError('headersTooLarge', 'The request line and headers are too large.');
    case 'HPE_URI_TOO_LONG':
      return new ProblemError('uriTooLong', 'The request URL is too long.');
  }
  return new ProblemError('badRequest', 'The request is not valid HTTP.');
}

/**
 * Writes the problem as a complete HTTP/1.1 response and closes the
 * connection — unless a response already started on it, in which case the
 * connection is only closed.
 */
export function writeClientErrorProblem(socket: Socket, error: ProblemError): void {
  const response = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !response?.headersSent) {
    const problem = error.toProblem();
    const body = JSON.stringify(problem);
    socket.write(
      `HTTP/1.1 ${problem.status} ${problem.title}\r\n` +
        'Content-Type: application/problem+json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  }
  socket.destroy();
}

/** Fastify's refusals before routing (frameworkErrors): a URL it cannot decode, a path parameter over its limit. */
export function sendFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  reply.header('X-Request-Id', request.id);
  switch (error.code) {
    case 'FST_ERR_BAD_URL':
      return sendProblem(reply, new ProblemError('badRequest', 'The request URL is not valid (malformed percent-encoding).'));
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return sendProblem(reply, new ProblemError('uriTooLong', 'A segment of the request URL is too long.'));
  }
  request.log.error({ err: error }, 'unexpected framework error');
  return sendProblem(reply, new ProblemError('internal', 'Something went wrong on our side; the request id identifies it in our logs.'));
}

/** A 4xx error a plugin raised with only a status (e.g. a static file that is not there or not allowed). */
export function problemForStatus(statusCode: number | undefined): ProblemError | undefined {
  switch (statusCode) {
    case 403:
    case 404:
      // A file outside the served directory is simply not there.
      return new ProblemError('notFound', 'No such resource.');
    case 400:
      return new ProblemError('badRequest', 'The request is not valid.');
    case 414:
      return new ProblemError('uriTooLong', 'The request URL is too long.');
    case 431:
      return new ProblemError('headersTooLarge', 'The request line and headers are too large.');
  }
  return undefined;
}
