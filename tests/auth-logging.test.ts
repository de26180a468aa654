// What the gateway writes to its logs and the headers every response carries:
// bearer tokens and Authorization headers never reach the logs, every response
// has an X-Request-Id that is the id the logs use, and CORS lets exactly the
// configured browser origins call with the headers the API needs.
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintHs256Token } from '../src/dev-secret.js';
import { startJwksServer, type JwksServer } from './support/jwks-server.js';
import { TEST_JWT_SECRET, bearer, createTestApp, newUser, tokenFor, type TestApp } from './support/http.js';

const ALLOWED_ORIGIN = 'https://app.example.com';
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

let jwks: JwksServer;
let t: TestApp;

beforeAll(async () => {
  jwks = await startJwksServer();
  t = await createTestApp({
    verifier: { secret: TEST_JWT_SECRET, jwksUrl: jwks.jwksUrl },
    corsOrigins: [ALLOWED_ORIGIN],
  });
});
afterAll(async () => {
  await t?.close();
  await jwks?.close();
});

/** The parts of a token that must never appear in a log (its header is the same for every token). */
function secretParts(token: string): string[] {
  const [, payload, signature] = token.split('.');
  return [token, payload, signature].filter((part) => part && part.length >= 16);
}

function expectNotLogged(logs: Record<string, unknown>[], tokens: string[]) {
  const text = JSON.stringify(logs);
  for (const token of tokens) {
    for (const part of secretParts(token)) expect(text).not.toContain(part);
  }
  expect(text).not.toMatch(/authorization/i);
  expect(text).not.toMatch(/bearer /i);
  expect(text).not.toMatch(/"cookie"/i);
}

/** Log lines written for the request that got `response`. */
function linesOf(logs: Record<string, unknown>[], response: LightMyRequestResponse) {
  return logs.filter((line) => line.reqId === response.headers['x-request-id']);
}

describe('logs never contain a token or the Authorization header', () => {
  it('for accepted tokens (HS256 and EdDSA), on reads and writes', async () => {
    const sub = newUser('logged');
    const tokens = [await tokenFor(sub), await jwks.sign(sub, { claims: { email: 'secret-person@example.com' } })];
    const before = t.logs.length;
    for (const token of tokens) {
      const created = await t.app.inject({ method: 'POST', url: '/api/tasks', headers: bearer(token), payload: { title: 'a' } });
      expect(created.statusCode).toBe(201);
      const id = created.json().id;
      expect((await t.app.inject({ url: '/api/tasks', headers: bearer(token) })).statusCode).toBe(200);
      expect((await t.app.inject({ url: `/api/${sub}/tasks/${id}`, headers: bearer(token) })).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'DELETE', url: `/api/tasks/${id}`, headers: bearer(token) })).statusCode).toBe(204);
    }
    const logs = t.logs.slice(before);
    expect(logs.length).toBeGreaterThan(0);
    expectNotLogged(logs, tokens);
    // The identity carried in a Better Auth token (email) is not logged either.
    expect(JSON.stringify(logs)).not.toContain('secret-person@example.com');
  });

  it('for rejected tokens: expired, forged, malformed, wrong scheme, and in a cookie', async () => {
    const sub = newUser('rejected');
    const expired = await tokenFor(sub, { expiresIn: '-1h' });
    const forged = await mintHs256Token({ secret: 'not-the-secret-not-the-secret-not-the-secret', sub });
    const wrongScheme = await tokenFor(sub);
    const inCookie = await tokenFor(sub);
    const garbage = 'this-is-not-a-jwt-but-still-a-secret-1234567890';
    const before = t.logs.length;
    const responses = [
      await t.app.inject({ url: '/api/tasks', headers: bearer(expired) }),
      await t.app.inject({ method: 'POST', url: '/api/tasks', headers: bearer(forged), payload: { title: 'x' } }),
      await t.app.inject({ url: '/api/tasks', headers: bearer(garbage) }),
      await t.app.inject({ url: '/api/tasks', headers: { authorization: `Token ${wrongScheme}` } }),
      await t.app.inject({ url: '/api/tasks', headers: { cookie: `better-auth.session_token=${inCookie}` } }),
    ];
    for (const response of responses) expect(response.statusCode).toBe(401);
    const logs = t.logs.slice(before);
    expect(logs.length).toBeGreaterThan(0);
    expectNotLogged(logs, [expired, forged, wrongScheme, inCookie]);
    expect(JSON.stringify(logs)).not.toContain(garbage);
  });

  it('when the JWKS endpoint is unreachable (503, logged as a warning)', async () => {
    const server = await startJwksServer();
    const token = await server.sign(newUser('outage'));
    await server.close();
    const app = await createTestApp({ verifier: { jwksUrl: server.jwksUrl } });
    try {
      const response = await app.app.inject({ url: '/api/tasks', headers: bearer(token) });
      expect(response.statusCode).toBe(503);
      expect(app.logs.some((line) => line.level === 40)).toBe(true);
      expectNotLogged(app.logs, [token]);
    } finally {
      await app.close();
    }
  });

  it('when the database is unreachable (503, logged as a warning)', async () => {
    const app = await createTestApp({ appUrl: 'postgres://authenticator:pw@127.0.0.1:1/nowhere' });
    try {
      const token = await tokenFor(newUser('dbdown'));
      const response = await app.app.inject({ url: '/api/tasks', headers: bearer(token) });
      expect(response.statusCode).toBe(503);
      expect(response.headers['x-request-id']).toMatch(REQUEST_ID);
      expectNotLogged(app.logs, [token]);
      // The connection string's password does not leak either.
      expect(JSON.stringify(app.logs)).not.toContain(':pw@');
    } finally {
      await app.close();
    }
  });

  it('a token mistakenly sent in the query string is refused and not written to the logs', async () => {
    const token = await tokenFor(newUser('querylog'));
    const before = t.logs.length;
    const response = await t.app.inject({ url: `/api/tasks?access_token=${token}` });
    expect(response.statusCode).toBe(401);
    expectNotLogged(t.logs.slice(before), [token]);
  });
});

describe('X-Request-Id', () => {
  it('every response carries one: 2xx, 4xx of every kind, preflight, health, unknown routes', async () => {
    const sub = newUser('ids');
    const token = await tokenFor(sub);
    const created = await t.app.inject({ method: 'POST', url: '/api/tasks', headers: bearer(token), payload: { title: 'x' } });
    const responses: [string, LightMyRequestResponse][] = [
      ['201', created],
      ['200 list', await t.app.inject({ url: '/api/tasks', headers: bearer(token) })],
      ['204 delete', await t.app.inject({ method: 'DELETE', url: `/api/tasks/${created.json().id}`, headers: bearer(token) })],
      ['401', await t.app.inject({ url: '/api/tasks' })],
      ['403', await t.app.inject({ url: `/api/${newUser('other')}/tasks`, headers: bearer(token) })],
      ['404', await t.app.inject({ url: `/api/tasks/${created.json().id}`, headers: bearer(token) })],
      ['404 route', await t.app.inject({ url: '/no/such/route' })],
      ['405', await t.app.inject({ method: 'DELETE', url: '/api/tasks', headers: bearer(token) })],
      [
        '400',
        await t.app.inject({
          method: 'POST',
          url: '/api/tasks',
          headers: { ...bearer(token), 'content-type': 'application/json' },
          payload: '{"title":',
        }),
      ],
      [
        '415',
        await t.app.inject({
          method: 'POST',
          url: '/api/tasks',
          headers: { ...bearer(token), 'content-type': 'text/plain' },
          payload: 'title',
        }),
      ],
      ['422', await t.app.inject({ method: 'POST', url: '/api/tasks', headers: bearer(token), payload: { title: '' } })],
      [
        '413',
        await t.app.inject({
          method: 'POST',
          url: '/api/tasks',
          headers: bearer(token),
          payload: { title: 'x', description: 'y'.repeat(70 * 1024) },
        }),
      ],
      [
        'preflight',
        await t.app.inject({
          method: 'OPTIONS',
          url: '/api/tasks',
          headers: { origin: ALLOWED_ORIGIN, 'access-control-request-method': 'GET' },
        }),
      ],
      ['health', await t.app.inject({ url: '/health/live' })],
      ['openapi', await t.app.inject({ url: '/openapi.json' })],
    ];
    const ids = new Set<string>();
    for (const [name, response] of responses) {
      expect(response.headers['x-request-id'], name).toMatch(REQUEST_ID);
      ids.add(String(response.headers['x-request-id']));
    }
    expect(ids.size).toBe(responses.length);
    expect(responses.map(([name, r]) => `${name}:${r.statusCode}`)).toEqual([
      '201:201',
      '200 list:200',
      '204 delete:204',
      '401:401',
      '403:403',
      '404:404',
      '404 route:404',
      '405:405',
      '400:400',
      '415:415',
      '422:422',
      '413:413',
      'preflight:204',
      'health:200',
      'openapi:200',
    ]);
  });

  it.each(['abc-123', 'req_01HZX9:frontend.42', 'a'.repeat(128), '8d0f1c0e-6b1a-4a57-9a43-2f6f4f0b8a2e'])(
    'a sane incoming X-Request-Id (%s) is echoed back and used in the logs',
    async (incoming) => {
      const token = await tokenFor(newUser('echo'));
      for (const headers of [{ ...bearer(token) }, {}]) {
        const response = await t.app.inject({ url: '/api/tasks', headers: { ...headers, 'x-request-id': incoming } });
        expect(response.headers['x-request-id']).toBe(incoming);
        expect(linesOf(t.logs, response).length).toBeGreaterThan(0);
      }
    },
  );

  it.each([
    ['spaces', 'bad id with spaces'],
    ['over 128 characters', 'a'.repeat(129)],
  ])('an incoming X-Request-Id with %s is replaced, and the logs use the id the client received', async (_name, incoming) => {
    const before = t.logs.length;
    const response = await t.app.inject({ url: '/api/tasks', headers: { 'x-request-id': incoming } });
    expect(response.statusCode).toBe(401);
    const echoed = String(response.headers['x-request-id']);
    expect(echoed).toMatch(REQUEST_ID);
    expect(echoed).not.toBe(incoming);
    // The id handed to the client must find this request's log lines (the
    // 500 problem tells users "the request id identifies it in our logs"),
    // and the caller's unsanitised value must not be the log's request id.
    const logs = t.logs.slice(before);
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) expect(line.reqId).toBe(echoed);
    expect(JSON.stringify(logs)).not.toContain(JSON.stringify(incoming).slice(1, -1));
  });
});

describe('CORS', () => {
  function preflight(origin: string, method = 'POST', headers = 'authorization,content-type,if-match,idempotency-key', app = t) {
    return app.app.inject({
      method: 'OPTIONS',
      url: '/api/tasks',
      headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
    });
  }

  const headerList = (value: unknown) =>
    String(value ?? '')
      .split(',')
      .map((item) => item.trim().toLowerCase())
      .filter(Boolean);

  it('a preflight from the configured origin is allowed, with Authorization, If-Match and Idempotency-Key', async () => {
    const response = await preflight(ALLOWED_ORIGIN);
    expect(response.statusCode).toBeLessThan(300);
    expect(response.headers['access-control-allow-origin']).toBe(ALLOWED_ORIGIN);
    expect(headerList(response.headers['access-control-allow-headers'])).toEqual(
      expect.arrayContaining(['authorization', 'if-match', 'idempotency-key', 'content-type']),
    );
    expect(headerList(response.headers['access-control-allow-methods'])).toEqual(
      expect.arrayContaining(['get', 'post', 'put', 'patch', 'delete']),
    );
    expect(response.headers.vary).toMatch(/origin/i);
  });

  it('a preflight for a task path (PATCH with If-Match) is allowed too, without a token', async () => {
    const response = await t.app.inject({
      method: 'OPTIONS',
      url: '/api/tasks/8d0f1c0e-6b1a-4a57-9a43-2f6f4f0b8a2e/complete',
      headers: { origin: ALLOWED_ORIGIN, 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization,if-match' },
    });
    expect(response.statusCode).toBeLessThan(300);
    expect(response.headers['access-control-allow-origin']).toBe(ALLOWED_ORIGIN);
  });

  it.each([
    ['another origin', 'https://evil.example.com'],
    ['a look-alike suffix', 'https://app.example.com.evil.com'],
    ['the same host over http', 'http://app.example.com'],
    ['another port', 'https://app.example.com:8443'],
    ['a subdomain', 'https://sub.app.example.com'],
    ['the null origin', 'null'],
  ])('a preflight from %s gets no allow-origin header', async (_name, origin) => {
    const response = await preflight(origin);
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
    expect(response.headers['access-control-allow-credentials']).toBeUndefined();
  });

  it('an actual 401 to the configured origin is readable by the browser (allow-origin, exposed WWW-Authenticate)', async () => {
    const response = await t.app.inject({ url: '/api/tasks', headers: { origin: ALLOWED_ORIGIN } });
    expect(response.statusCode).toBe(401);
    expect(response.headers['access-control-allow-origin']).toBe(ALLOWED_ORIGIN);
    expect(headerList(response.headers['access-control-expose-headers'])).toEqual(
      expect.arrayContaining(['www-authenticate', 'x-request-id', 'etag', 'location', 'retry-after']),
    );
  });

  it('an actual request from another origin gets no allow-origin header', async () => {
    const token = await tokenFor(newUser('cors'));
    const response = await t.app.inject({ url: '/api/tasks', headers: { ...bearer(token), origin: 'https://evil.example.com' } });
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('with no CORS origins configured, no origin is allowed', async () => {
    const app = await createTestApp();
    try {
      const response = await preflight(ALLOWED_ORIGIN, 'POST', 'authorization', app);
      expect(response.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await app.close();
    }
  });
});
