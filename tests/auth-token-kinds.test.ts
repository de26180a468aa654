// Tokens of the wrong kind are refused whatever the configuration: another
// JWT type signed by the same keys (Better Auth's session-cache cookie), a
// subject the database cannot index or that carries control characters, and
// claims PostgreSQL cannot store are 401 with a clear reason, never 422 or
// 500. A cached verification ends with its key, and a key rotated in during
// the JWKS refetch cooldown gets 503 + Retry-After, never 401. Against a
// real JWKS server (tests/support/jwks-server.ts).
import type { LightMyRequestResponse } from 'fastify';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSigningKey, startJwksServer, type JwksServer, type SigningKey } from './support/jwks-server.js';
import { TEST_JWT_SECRET, bearer, createTestApp, newUser, type TestApp } from './support/http.js';

const now = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let jwks: JwksServer;
/** No JWT_AUDIENCE and no JWT_ISSUER: the configuration the session-cache JWT slipped through. */
let open: TestApp;
let strict: TestApp;

beforeAll(async () => {
  jwks = await startJwksServer();
  open = await createTestApp({ verifier: { secret: TEST_JWT_SECRET, jwksUrl: jwks.jwksUrl } });
  strict = await createTestApp({ verifier: { secret: TEST_JWT_SECRET, jwksUrl: jwks.jwksUrl, issuer: jwks.baseUrl, audience: [jwks.baseUrl] } });
});
afterAll(async () => {
  await open?.close();
  await strict?.close();
  await jwks?.close();
});

function payload(sub: string, extra: Record<string, unknown> = {}): JWTPayload {
  return { sub, iss: jwks.baseUrl, aud: jwks.baseUrl, iat: now(), exp: now() + 600, ...extra };
}

function signWith(claims: JWTPayload, header: { typ?: string; kid?: string } = {}, key: SigningKey = jwks.keys[0]) {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: header.kid ?? key.kid, ...(header.typ ? { typ: header.typ } : {}) }).sign(key.privateKey);
}

function signHs256(claims: JWTPayload, typ?: string) {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', ...(typ ? { typ } : {}) }).sign(new TextEncoder().encode(TEST_JWT_SECRET));
}

function expect401(response: LightMyRequestResponse, reason?: RegExp) {
  expect(response.statusCode, response.body).toBe(401);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.headers['www-authenticate']).toContain('error="invalid_token"');
  const body = response.json();
  expect(body).toMatchObject({ type: '/problems/unauthorized', status: 401 });
  if (reason) expect(body.detail).toMatch(reason);
  expect(body.detail).not.toMatch(/invalid input syntax|jsonb?|sqlstate/i);
}

const get = (app: TestApp, token: string) => app.app.inject({ url: '/api/tasks', headers: bearer(token) });
const post = (app: TestApp, token: string) =>
  app.app.inject({ method: 'POST', url: '/api/tasks', headers: bearer(token), payload: { title: 'from a token' } });

describe('the typ header', () => {
  // What Better Auth puts in its cookie cache when sessionCookieCache signs it
  // with the JWT plugin's keys: the session (and its raw token) and the user.
  function sessionCacheClaims(sub: string): JWTPayload {
    return payload(sub, {
      session: { session: { id: 'sess-1', token: 'raw-session-token-abc', userId: sub, expiresAt: new Date().toISOString() }, user: { id: sub, email: `${sub}@example.com` } },
      updatedAt: Date.now(),
    });
  }

  it.each([
    ['without JWT_AUDIENCE', () => open],
    ['with JWT_AUDIENCE', () => strict],
  ])("Better Auth's session-cache JWT (typ better-auth.session-cache+jwt) is 401 %s", async (_label, app) => {
    const sub = newUser('session-cache');
    const token = await signWith(sessionCacheClaims(sub), { typ: 'better-auth.session-cache+jwt' });
    expect401(await get(app(), token), /typ/);
    expect401(await post(app(), token), /typ/);
    expect((await get(app(), await signWith(payload(sub)))).json()).toEqual([]);
  });

  it.each(['id_token+jwt', 'JOSE', 'secevent+jwt', 'jwt+other'])('typ %s is 401, for HS256 tokens too', async (typ) => {
    const sub = newUser('typ');
    expect401(await get(open, await signWith(payload(sub), { typ })));
    expect401(await get(open, await signHs256(payload(sub), typ)));
  });

  it.each([undefined, 'JWT', 'jwt', 'at+jwt', 'application/at+jwt'])('typ %s is accepted', async (typ) => {
    const sub = newUser('typ-ok');
    expect((await get(strict, await signWith(payload(sub), { typ }))).statusCode).toBe(200);
    expect((await get(strict, await signHs256(payload(sub), typ))).statusCode).toBe(200);
  });
});

describe('the subject', () => {
  it('a sub of 255 characters works; 256 is 401 on reads and writes, never a 500', async () => {
    const base = newUser('long');
    const fits = base + 'x'.repeat(255 - base.length);
    const created = await post(strict, await signWith(payload(fits)));
    expect(created.statusCode).toBe(201);
    const tooLong = `${fits}y`;
    expect401(await post(strict, await signWith(payload(tooLong))), /255/);
    expect401(await get(strict, await signWith(payload('z'.repeat(4000)))), /255/);
  });

  it.each([
    ['a newline', 'user\nadmin'],
    ['a NUL', 'user\u0000'],
    ['a DEL', 'user\u007f'],
    ['a C1 control', 'user\u0085'],
  ])('a sub with %s is 401', async (_label, sub) => {
    expect401(await post(strict, await signWith(payload(sub))), /control/);
  });
});

describe('claims PostgreSQL cannot store', () => {
  it.each([
    ['a NUL in name', { name: 'Ann\u0000' }, /NUL/],
    ['a lone high surrogate deep in a claim', { profile: { tags: ['ok', 'bad\ud800'] } }, /surrogate/],
    ['a lone low surrogate in a claim name', { ['x\udc00']: 1 }, /surrogate/],
  ])('%s is 401 with the reason, on GET and POST, for both key kinds', async (_label, extra, reason) => {
    const sub = newUser('claims');
    expect401(await get(strict, await signWith(payload(sub, extra))), reason);
    expect401(await post(strict, await signWith(payload(sub, extra))), reason);
    expect401(await get(strict, await signHs256(payload(sub, extra))), reason);
  });

  it('characters outside the BMP (paired surrogates) are fine', async () => {
    const sub = newUser('emoji');
    expect((await post(strict, await signWith(payload(sub, { name: 'Ann 😀' })))).statusCode).toBe(201);
  });
});

describe('cached verification and the JWKS', () => {
  const apps: TestApp[] = [];
  const servers: JwksServer[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    for (const server of servers.splice(0)) await server.close();
  });
  async function setUp(verifier: Record<string, unknown>) {
    const server = await startJwksServer();
    servers.push(server);
    // One process: what is asserted is what one gateway's JWKS cache remembers.
    const app = await createTestApp({ verifier: { jwksUrl: server.jwksUrl, ...verifier }, replicas: 1 });
    apps.push(app);
    return { server, app };
  }

  it('a token (exp in 10^20) stops working once a JWKS refresh drops its key', async () => {
    const { server, app } = await setUp({ jwksCooldownMs: 200 });
    const kept = await createSigningKey();
    server.publish(kept);
    const sub = newUser('dropped');
    const doomed = await new SignJWT({ sub, iat: now(), exp: 1e20 }).setProtectedHeader({ alg: 'EdDSA', kid: server.keys[0].kid }).sign(server.keys[0].privateKey);
    expect((await get(app, doomed)).statusCode).toBe(200);
    expect((await get(app, doomed)).statusCode).toBe(200); // from the cache

    server.keys.splice(0, 1); // the key is withdrawn
    await sleep(300);
    // Another user's token with a kid the gateway has not seen makes it refetch.
    const rotatedIn = await createSigningKey();
    server.publish(rotatedIn);
    const fetches = server.fetches;
    expect((await get(app, await server.sign(newUser('other'), { key: rotatedIn }))).statusCode).toBe(200);
    expect(server.fetches).toBe(fetches + 1);

    expect401(await get(app, doomed));
    expect((await get(app, await server.sign(sub, { key: kept }))).statusCode).toBe(200);
  });

  it('a cached verification ends with the JWKS cache lifetime, refetching the key set', async () => {
    const { server, app } = await setUp({ jwksCacheMaxAgeMs: 400 });
    const sub = newUser('lifetime');
    const token = await new SignJWT({ sub, iat: now(), exp: 1e20 }).setProtectedHeader({ alg: 'EdDSA', kid: server.keys[0].kid }).sign(server.keys[0].privateKey);
    expect((await get(app, token)).statusCode).toBe(200);
    server.keys.splice(0, 1, await createSigningKey());
    expect((await get(app, token)).statusCode).toBe(200); // within the lifetime
    await sleep(500);
    expect401(await get(app, token));
  });

  it('a key rotated in during the refetch cooldown is 503 with Retry-After, then verifies after it', async () => {
    const cooldownMs = 1_500;
    const { server, app } = await setUp({ jwksCooldownMs: cooldownMs });
    const sub = newUser('rotation');
    expect((await get(app, await server.sign(sub))).statusCode).toBe(200);
    const fetchedAt = Date.now();
    expect(server.fetches).toBe(1);

    const rotated = await createSigningKey();
    server.publish(rotated);
    const token = await server.sign(sub, { key: rotated });
    const early = await post(app, token);
    expect(early.statusCode, early.body).toBe(503);
    expect(early.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(early.headers['www-authenticate']).toBeUndefined();
    const retryAfter = Number(early.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil(cooldownMs / 1000));
    expect(server.fetches).toBe(1);

    await sleep(Math.max(0, fetchedAt + cooldownMs - Date.now()) + 100);
    const later = await post(app, token);
    expect(later.statusCode, later.body).toBe(201);
    expect(server.fetches).toBe(2);
  });

  it('a flood of unknown kids causes at most one fetch per cooldown; each is 503 during it or 401 after a fetch', async () => {
    const cooldownMs = 1_000;
    const { server, app } = await setUp({ jwksCooldownMs: cooldownMs });
    const sub = newUser('flood');
    expect((await get(app, await server.sign(sub))).statusCode).toBe(200);
    const started = Date.now();
    const strangers = await Promise.all(Array.from({ length: 5 }, () => createSigningKey()));
    const statuses: number[] = [];
    while (Date.now() - started < 2.5 * cooldownMs) {
      const responses = await Promise.all(
        strangers.map(async (key) => get(app, await new SignJWT({ sub, iat: now(), exp: now() + 60 }).setProtectedHeader({ alg: 'EdDSA', kid: key.kid }).sign(key.privateKey))),
      );
      for (const response of responses) {
        statuses.push(response.statusCode);
        if (response.statusCode === 503) expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        else expect401(response);
      }
      await sleep(50);
    }
    const elapsed = Date.now() - started;
    expect(statuses).toContain(503);
    expect(server.fetches - 1).toBeLessThanOrEqual(Math.ceil(elapsed / cooldownMs));
    expect((await get(app, await server.sign(sub))).statusCode).toBe(200);
  });
});
