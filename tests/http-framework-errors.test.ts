// What happens before a route runs: requests Node cannot parse, URLs Fastify
// cannot decode, oversized headers, slow clients, the static files of /docs.
// Every answer is problem+json, slow clients lose their connection within
// the configured timeouts, and no log line at any level carries the token.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createTestApp, expectProblem, newUser, tokenFor, type TestApp } from './support/http.js';

// Short timeouts so slow clients can be observed quickly.
const TIMEOUTS = { requestTimeoutMs: 1_500, headersTimeoutMs: 800, keepAliveTimeoutMs: 500 };
/** How long a test waits for the server to drop a connection before failing. */
const DROP_BOUND_MS = 8_000;

let t: TestApp;
let port: number;
let token: string;

beforeAll(async () => {
  t = await createTestApp({ timeouts: TIMEOUTS, logLevel: 'trace' });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  port = (t.app.server.address() as AddressInfo).port;
  token = await tokenFor(newUser('framework'));
});
afterAll(async () => {
  await t?.close();
});

interface RawExchange {
  /** Everything the server sent. */
  response: string;
  /** The server closed the connection (within DROP_BOUND_MS). */
  closedByServer: boolean;
  ms: number;
}

/**
 * Opens a socket, writes `chunks` (a string, or strings written `gapMs`
 * apart, forever when `repeatLast`), and collects the answer until the server
 * closes the connection or DROP_BOUND_MS passes.
 */
function exchange(chunks: string[], options: { gapMs?: number; repeatLast?: boolean } = {}): Promise<RawExchange> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    let response = '';
    let index = 0;
    let writer: NodeJS.Timeout | undefined;
    const finish = (closedByServer: boolean) => {
      clearInterval(writer);
      clearTimeout(bound);
      socket.destroy();
      resolve({ response, closedByServer, ms: Date.now() - started });
    };
    const bound = setTimeout(() => finish(false), DROP_BOUND_MS);
    socket.on('data', (chunk) => (response += chunk.toString('latin1')));
    socket.on('close', () => finish(true));
    socket.on('error', () => {});
    socket.on('connect', () => {
      const writeNext = () => {
        if (socket.destroyed) return;
        if (index < chunks.length) socket.write(chunks[index++]);
        else if (options.repeatLast) socket.write(chunks.at(-1)!);
      };
      writeNext();
      if (options.gapMs) writer = setInterval(writeNext, options.gapMs);
      else while (index < chunks.length) writeNext();
    });
  });
}

/** The status and the parsed problem body of a raw HTTP/1.1 response. */
function parseProblem(raw: string) {
  const [head, body] = [raw.slice(0, raw.indexOf('\r\n\r\n')), raw.slice(raw.indexOf('\r\n\r\n') + 4)];
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  expect(head, raw).toMatch(/\r\ncontent-type: application\/problem\+json/i);
  const problem = JSON.parse(body) as { status: number; type: string; title: string; detail: string };
  expect(problem.status, raw).toBe(status);
  expect(problem).toMatchObject({ type: expect.stringMatching(/^\/problems\//), title: expect.any(String), detail: expect.any(String) });
  return { status, problem };
}

const auth = () => `Authorization: Bearer ${token}\r\n`;

describe('requests Node cannot parse are answered with problem+json and the connection closed', () => {
  it('a request line that is not HTTP: 400', async () => {
    const { response, closedByServer } = await exchange([`GARBAGE\r\n${auth()}\r\n`]);
    expect(closedByServer).toBe(true);
    expect(parseProblem(response)).toMatchObject({ status: 400, problem: { type: '/problems/bad-request' } });
  });

  it('a malformed header line: 400', async () => {
    const { response } = await exchange([`GET /api/tasks HTTP/1.1\r\nHost: x\r\n${auth()}Not a header\r\n\r\n`]);
    expect(parseProblem(response)).toMatchObject({ status: 400, problem: { type: '/problems/bad-request' } });
  });

  it('headers over the size limit: 431', async () => {
    const { response } = await exchange([`GET /api/tasks HTTP/1.1\r\nHost: x\r\n${auth()}X-Padding: ${'a'.repeat(20_000)}\r\n\r\n`]);
    expect(parseProblem(response)).toMatchObject({ status: 431, problem: { type: '/problems/headers-too-large' } });
  });

  it('a URL longer than the header limit: 431 (Node counts the request line with the headers)', async () => {
    const { response } = await exchange([`GET /api/tasks/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n${auth()}\r\n`]);
    expect(parseProblem(response)).toMatchObject({ status: 431 });
  });
});

describe('Fastify-level errors are problem+json', () => {
  it.each([
    ['invalid percent-encoding in the path', '/api/tasks/%E0%A4%A', 400, '/problems/bad-request'],
    ['an undecodable user id', '/api/%ZZ/tasks', 400, '/problems/bad-request'],
    ['an unknown path', '/no/such/route', 404, '/problems/not-found'],
    ['an unknown path under /docs', '/docs/nothing-here', 404, '/problems/not-found'],
    ['a static path escaping /docs', '/docs/static/%2e%2e/%2e%2e/package.json', 404, '/problems/not-found'],
    ['a static path escaping /docs (encoded slash)', '/docs/static/..%2f..%2fpackage.json', 404, '/problems/not-found'],
    ['a static path with a NUL byte (the static-file plugin refuses it)', '/docs/static/%00', 400, '/problems/bad-request'],
    ['a static file that is not there', '/docs/static/no-such-file.js', 404, '/problems/not-found'],
  ])('%s: %s is %i', async (_name, url, status, type) => {
    const response = await t.app.inject({ url, headers: bearer(token) });
    expectProblem(response, status, type);
    expect(response.headers['x-request-id']).toBeTruthy();
    expect(response.body).not.toContain('"dependencies"');
  });

  it('a path parameter of 255 characters reaches the route (a user id may be that long): 403 another user, not 414', async () => {
    const response = await t.app.inject({ url: `/api/${'u'.repeat(255)}/tasks`, headers: bearer(token) });
    expectProblem(response, 403, '/problems/forbidden');
  });

  it('a path parameter over 1,024 characters is 414 problem+json', async () => {
    const response = await t.app.inject({ url: `/api/tasks/${'a'.repeat(1_100)}`, headers: bearer(token) });
    expectProblem(response, 414, '/problems/uri-too-long');
  });

  it('a body over 64 KiB is 413 problem+json, over a real socket too', async () => {
    const body = JSON.stringify({ title: 'x', description: 'y'.repeat(70 * 1024) });
    const { response } = await exchange([
      `POST /api/tasks HTTP/1.1\r\nHost: x\r\n${auth()}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    ]);
    expect(parseProblem(response)).toMatchObject({ status: 413, problem: { type: '/problems/body-too-large' } });
  });

  it('the /docs page itself still works', async () => {
    for (const url of ['/docs', '/docs/static/swagger-ui.css']) expect((await t.app.inject({ url })).statusCode, url).toBe(200);
  });
});

describe('slow clients lose their connection within the configured timeouts', () => {
  it('headers dribbled one line at a time: dropped (408 problem) after HTTP_HEADERS_TIMEOUT_MS', async () => {
    const { response, closedByServer, ms } = await exchange(['GET /api/tasks HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n'], {
      gapMs: 100,
      repeatLast: true,
    });
    expect(closedByServer, `still open after ${ms} ms`).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(TIMEOUTS.headersTimeoutMs - 50);
    expect(parseProblem(response)).toMatchObject({ status: 408, problem: { type: '/problems/request-timeout' } });
  });

  it.each([
    ['authenticated', true],
    ['unauthenticated (the 401 goes out first)', false],
  ])('a body dribbled a byte at a time, %s: dropped after HTTP_REQUEST_TIMEOUT_MS', async (_name, withToken) => {
    const { closedByServer, ms, response } = await exchange(
      [`POST /api/tasks HTTP/1.1\r\nHost: x\r\n${withToken ? auth() : ''}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`, ' '],
      { gapMs: 100, repeatLast: true },
    );
    expect(closedByServer, `still open after ${ms} ms`).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(TIMEOUTS.requestTimeoutMs - 50);
    if (!withToken) expect(response).toMatch(/^HTTP\/1\.1 401/);
  });

  it('a connection that never sends anything is dropped after HTTP_HEADERS_TIMEOUT_MS', async () => {
    const { closedByServer, ms } = await exchange([]);
    expect(closedByServer, `still open after ${ms} ms`).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(TIMEOUTS.headersTimeoutMs - 50);
  });

  it('an idle keep-alive connection is closed after HTTP_KEEP_ALIVE_TIMEOUT_MS', async () => {
    const { response, closedByServer, ms } = await exchange([`GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n`]);
    expect(response).toMatch(/^HTTP\/1\.1 200/);
    expect(closedByServer, `still open after ${ms} ms`).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(TIMEOUTS.keepAliveTimeoutMs - 50);
  });
});

describe('at LOG_LEVEL=trace, no log line carries the token', () => {
  it('after normal, rejected, malformed and timed-out requests that all sent it', async () => {
    // Everything above ran at trace with the token in Authorization; add a few more.
    await t.app.inject({ url: '/api/tasks', headers: bearer(token) });
    await t.app.inject({ url: '/api/tasks?access_token=' + token });
    await t.app.inject({ method: 'POST', url: '/api/tasks', headers: { ...bearer(token), 'content-type': 'application/json' }, payload: '{"title":' });
    await exchange([`GET /api/tasks HTTP/1.1\r\n${auth()}\x01bad\r\n\r\n`]);
    await exchange([`GET /api/tasks/%E0%A4%A HTTP/1.1\r\nHost: x\r\n${auth()}\r\n`]);

    expect(t.logs.length).toBeGreaterThan(10);
    // Fastify's own client-error line would be at trace (10) with the raw packet: there is one now, without it.
    expect(t.logs.some((line) => line.msg === 'client error')).toBe(true);
    const [, payload, signature] = token.split('.');
    for (const line of t.logs) {
      const text = JSON.stringify(line);
      for (const part of [token, payload, signature]) expect(text).not.toContain(part);
      expect(text).not.toMatch(/authorization|bearer|rawPacket/i);
    }
  });
});
