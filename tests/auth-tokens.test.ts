// The token matrix from an attacker's point of view: every way a request can
// fail to carry a valid bearer token is a 401 problem with a Bearer challenge,
// on reads and on writes, and nothing is written. The app under test accepts
// BOTH an HS256 shared secret and the keys published by a local stand-in for
// Better Auth's JWKS endpoint, with issuer and audience configured.
import type { LightMyRequestResponse } from 'fastify';
import { SignJWT, base64url, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintHs256Token } from '../src/dev-secret.js';
import { createSigningKey, startJwksServer, type JwksServer, type SigningKey } from './support/jwks-server.js';
import { TEST_JWT_SECRET, bearer, createTestApp, newUser, tokenFor, type TestApp } from './support/http.js';

const now = () => Math.floor(Date.now() / 1000);

/**
 * A time `offset` seconds from when the token is signed. Test tables are
 * built when the file is collected, maybe seconds before the test runs, so
 * they hold offsets, never absolute times.
 */
class FromNow {
  constructor(readonly offset: number) {}
}
const fromNow = (offset: number) => new FromNow(offset);
const encodeJson = (value: unknown) => base64url.encode(JSON.stringify(value));

let jwks: JwksServer;
let t: TestApp;

beforeAll(async () => {
  jwks = await startJwksServer();
  t = await createTestApp({
    verifier: {
      secret: TEST_JWT_SECRET,
      jwksUrl: jwks.jwksUrl,
      issuer: jwks.baseUrl,
      audience: [jwks.baseUrl],
    },
  });
});
afterAll(async () => {
  await t?.close();
  await jwks?.close();
});

/** Claims that pass every check, for `sub`; override or delete to break one. */
function claims(sub: string, overrides: Record<string, unknown> = {}): JWTPayload {
  const payload: Record<string, unknown> = { sub, iss: jwks.baseUrl, aud: jwks.baseUrl, iat: now(), exp: now() + 600, ...overrides };
  for (const [name, value] of Object.entries(payload)) {
    if (value === undefined) delete payload[name];
    else if (value instanceof FromNow) payload[name] = now() + value.offset;
  }
  return payload as JWTPayload;
}

/** HS256 over exactly `payload` (no claims added), with any secret. */
function signHs256(payload: JWTPayload, secret: string | Uint8Array = TEST_JWT_SECRET): Promise<string> {
  const key = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(key);
}

/** An asymmetric signature over exactly `payload`, by `key`, announcing `kid`. */
function signAsymmetric(payload: JWTPayload, key: SigningKey = jwks.keys[0], kid = key.kid): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid, typ: 'JWT' }).sign(key.privateKey);
}

type Family = 'HS256' | 'EdDSA';
const families: Family[] = ['HS256', 'EdDSA'];
const sign = (family: Family, payload: JWTPayload) => (family === 'HS256' ? signHs256(payload) : signAsymmetric(payload));

/** A token for `sub` that the app accepts. */
function validToken(sub: string, family: Family = 'EdDSA') {
  return sign(family, claims(sub));
}

async function list(headers: Record<string, string>, url = '/api/tasks') {
  return t.app.inject({ method: 'GET', url, headers });
}

async function create(headers: Record<string, string>, url = '/api/tasks') {
  return t.app.inject({ method: 'POST', url, headers, payload: { title: 'written by an attacker?' } });
}

function expectProblem401(response: LightMyRequestResponse, tokenSent: boolean) {
  expect(response.statusCode).toBe(401);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.json()).toMatchObject({ type: '/problems/unauthorized', status: 401 });
  const challenge = String(response.headers['www-authenticate'] ?? '');
  expect(challenge).toMatch(/^Bearer(\s|$)/);
  if (tokenSent) {
    expect(challenge).toContain('error="invalid_token"');
  } else {
    // RFC 6750 §3: no credentials (or an unsupported scheme) gets a bare challenge, no error code.
    expect(challenge).not.toContain('error=');
  }
}

/** `sub` owns no tasks: nothing was written on its behalf. */
async function expectNoTasks(sub: string) {
  const listed = await list(bearer(await validToken(sub)));
  expect(listed.statusCode).toBe(200);
  expect(listed.json()).toEqual([]);
}

/**
 * Sends the same credentials to a read and to a write route (both route
 * families), expects 401 everywhere, and checks nothing was created for `sub`.
 */
async function expectRejected(sub: string, request: { headers?: Record<string, string>; query?: string }, tokenSent: boolean) {
  const headers = request.headers ?? {};
  const query = request.query ? `?${request.query}` : '';
  for (const base of ['/api/tasks', `/api/${encodeURIComponent(sub)}/tasks`]) {
    expectProblem401(await list(headers, `${base}${query}`), tokenSent);
    expectProblem401(await create(headers, `${base}${query}`), tokenSent);
  }
  await expectNoTasks(sub);
}

describe('requests without a usable Authorization header', () => {
  it('no Authorization header is 401 with a bare Bearer challenge', async () => {
    const sub = newUser('anon');
    await expectRejected(sub, {}, false);
    expect((await list({})).headers['www-authenticate']).toBe('Bearer');
  });

  it.each([
    ['Basic credentials', async () => `Basic ${Buffer.from('alice:password').toString('base64')}`],
    ['the Token scheme', async (sub: string) => `Token ${await validToken(sub)}`],
    ['a bare token without a scheme', async (sub: string) => validToken(sub)],
    ['a JWT under the Digest scheme', async (sub: string) => `Digest ${await validToken(sub)}`],
  ])('%s is 401 (only Bearer is accepted)', async (_name, header) => {
    const sub = newUser('scheme');
    await expectRejected(sub, { headers: { authorization: await header(sub) } }, false);
  });

  it.each([
    ['Bearer with nothing after it', 'Bearer'],
    ['Bearer and spaces', 'Bearer    '],
    ['garbage after Bearer', 'Bearer not-a-jwt'],
    ['three garbage segments', 'Bearer a.b.c'],
    ['characters outside the token68 alphabet', 'Bearer eyJ!!.$$$.%%%'],
    ['a JSON object instead of a JWT', 'Bearer {"sub":"alice"}'],
  ])('%s is 401 invalid_token', async (_name, header) => {
    await expectRejected(newUser('garbage'), { headers: { authorization: header } }, true);
  });

  it('a valid token followed by extra words is 401 invalid_token', async () => {
    const sub = newUser('extra');
    await expectRejected(sub, { headers: { authorization: `Bearer ${await validToken(sub)} extra` } }, true);
  });

  it('a valid token in the query string (?access_token=) is ignored: 401', async () => {
    const sub = newUser('query');
    const token = await validToken(sub);
    await expectRejected(sub, { query: `access_token=${token}` }, false);
  });

  it('a valid token in a cookie only is ignored: 401', async () => {
    const sub = newUser('cookie');
    const token = await validToken(sub);
    const cookie = `access_token=${token}; token=${token}; better-auth.session_token=${token}; jwt=${token}`;
    await expectRejected(sub, { headers: { cookie } }, false);
  });
});

describe('claims', () => {
  describe.each(families)('%s tokens', (family) => {
    it.each([
      ['expired beyond the 5 s tolerance', { exp: fromNow(-30) }],
      ['expired long ago', { iat: fromNow(-7200), exp: fromNow(-3600) }],
      ['without exp', { exp: undefined }],
      ['with a non-numeric exp', { exp: 'tomorrow' }],
      ['not valid before a time in the future (nbf)', { nbf: fromNow(60) }],
      ['issued in the future beyond the tolerance (iat)', { iat: fromNow(60) }],
      ['from another issuer', { iss: 'https://evil.example.com' }],
      ['without an issuer', { iss: undefined }],
      ['for another audience', { aud: 'https://other-api.example.com' }],
      ['for a list of other audiences', { aud: ['https://a.example.com', 'https://b.example.com'] }],
      ['without an audience', { aud: undefined }],
      ['without sub', { sub: undefined }],
      ['with an empty-string sub', { sub: '' }],
      ['with a numeric sub', { sub: 12345 }],
      ['with a null sub', { sub: null }],
      ['with an object sub', { sub: { id: 'alice' } }],
    ])('a token %s is 401 invalid_token', async (_name, overrides) => {
      // The owner the token would have written for, when its sub is a usable string.
      const sub = newUser('claims');
      const token = await sign(family, claims(sub, overrides));
      await expectRejected(sub, { headers: bearer(token) }, true);
    });

    it.each([
      ['expired within the 5 s tolerance', { exp: fromNow(-2) }],
      ['not valid before a time within the tolerance', { nbf: fromNow(2) }],
      ['issued within the tolerance in the future', { iat: fromNow(2) }],
      ['without iat', { iat: undefined }],
      ['whose aud list includes this API', { aud: ['https://other.example.com', 'AUDIENCE'] }],
    ])('a token %s passes', async (_name, overrides) => {
      const sub = newUser('lenient');
      const resolved = Object.fromEntries(
        Object.entries(overrides).map(([name, value]) => [
          name,
          Array.isArray(value) ? value.map((item) => (item === 'AUDIENCE' ? jwks.baseUrl : item)) : value,
        ]),
      );
      const token = await sign(family, claims(sub, resolved));
      const created = await create(bearer(token));
      expect(created.statusCode).toBe(201);
      expect(created.json().user_id).toBe(sub);
      const listed = await list(bearer(token));
      expect(listed.statusCode).toBe(200);
      expect(listed.json()).toEqual([created.json()]);
    });
  });
});

describe('signatures and algorithms', () => {
  /** Changes one character in the middle of the signature (the last one may only carry padding bits). */
  function flipSignature(token: string): string {
    const [header, payload, signature] = token.split('.');
    const i = Math.floor(signature.length / 2);
    const flipped = signature[i] === 'A' ? 'B' : 'A';
    return `${header}.${payload}.${signature.slice(0, i)}${flipped}${signature.slice(i + 1)}`;
  }

  it.each(families)('a %s token with one signature character changed is 401', async (family) => {
    const sub = newUser('flip');
    await expectRejected(sub, { headers: bearer(flipSignature(await validToken(sub, family))) }, true);
  });

  it.each(families)('a %s token with its signature removed is 401', async (family) => {
    const sub = newUser('nosig');
    const [header, payload] = (await validToken(sub, family)).split('.');
    await expectRejected(sub, { headers: bearer(`${header}.${payload}.`) }, true);
  });

  it('an HS256 token signed with a different secret is 401', async () => {
    const sub = newUser('othersecret');
    const token = await signHs256(claims(sub), 'another-secret-that-is-also-32-bytes-long!');
    await expectRejected(sub, { headers: bearer(token) }, true);
  });

  it.each([
    ['{"alg":"none"}', { alg: 'none' }],
    ['{"alg":"none","typ":"JWT"}', { alg: 'none', typ: 'JWT' }],
    ['{"alg":"None"}', { alg: 'None' }],
    ['{"alg":"NONE"}', { alg: 'NONE' }],
    ['{"alg":"none"} with a published kid', { alg: 'none', kid: 'FIRST_KID' }],
  ])('an unsigned token %s is 401', async (_name, header) => {
    const sub = newUser('none');
    const protectedHeader = Object.fromEntries(
      Object.entries(header).map(([name, value]) => [name, value === 'FIRST_KID' ? jwks.keys[0].kid : value]),
    );
    const token = `${encodeJson(protectedHeader)}.${encodeJson(claims(sub))}.`;
    await expectRejected(sub, { headers: bearer(token) }, true);
  });

  it('a header without alg is 401', async () => {
    const sub = newUser('noalg');
    const real = await validToken(sub, 'HS256');
    const [, payload, signature] = real.split('.');
    await expectRejected(sub, { headers: bearer(`${encodeJson({ typ: 'JWT' })}.${payload}.${signature}`) }, true);
  });

  it.each([
    ['HS384', 'HS384'],
    ['HS512', 'HS512'],
  ])('an %s token signed with the right secret is 401 (only HS256 is configured)', async (_name, alg) => {
    const sub = newUser('hsother');
    const token = await new SignJWT(claims(sub)).setProtectedHeader({ alg }).sign(new TextEncoder().encode(TEST_JWT_SECRET));
    await expectRejected(sub, { headers: bearer(token) }, true);
  });

  describe('key confusion: HS256 "signed" with the published public key', () => {
    const secrets: [string, (key: SigningKey) => string | Uint8Array][] = [
      ['the public JWK as JSON', (key) => JSON.stringify(key.publicJwk)],
      ['the JWKS document as JSON', () => JSON.stringify({ keys: jwks.keys.map((key) => key.publicJwk) })],
      ['the x coordinate (base64url text)', (key) => key.publicJwk.x!],
      ['the raw public key bytes', (key) => base64url.decode(key.publicJwk.x!)],
    ];

    it.each(secrets)('HMAC secret = %s is 401', async (_name, secretOf) => {
      const sub = newUser('confusion');
      const key = jwks.keys[0];
      const token = await new SignJWT(claims(sub))
        .setProtectedHeader({ alg: 'HS256', kid: key.kid, typ: 'JWT' })
        .sign(((secret) => (typeof secret === 'string' ? new TextEncoder().encode(secret) : secret))(secretOf(key)));
      await expectRejected(sub, { headers: bearer(token) }, true);
    });
  });

  it('an EdDSA token with a kid the JWKS does not publish is refused: 401 after a refetch, 503 + Retry-After during its cooldown', async () => {
    const sub = newUser('unknownkid');
    const stranger = await createSigningKey('EdDSA');
    const headers = bearer(await signAsymmetric(claims(sub), stranger));
    for (const base of ['/api/tasks', `/api/${encodeURIComponent(sub)}/tasks`]) {
      for (const response of [await list(headers, base), await create(headers, base)]) {
        if (response.statusCode === 503) {
          expect(response.headers['retry-after']).toMatch(/^\d+$/);
          expect(response.json()).toMatchObject({ type: '/problems/unavailable', status: 503 });
        } else {
          expectProblem401(response, true);
        }
      }
    }
    await expectNoTasks(sub);
  });

  it('an EdDSA token without a kid, signed by an unpublished key, is 401', async () => {
    const sub = newUser('nokid');
    const stranger = await createSigningKey('EdDSA');
    const token = await new SignJWT(claims(sub)).setProtectedHeader({ alg: 'EdDSA' }).sign(stranger.privateKey);
    await expectRejected(sub, { headers: bearer(token) }, true);
  });

  it('an EdDSA token signed by an unpublished key that reuses a published kid is 401', async () => {
    const sub = newUser('kidreuse');
    const impostor = await createSigningKey('EdDSA');
    await expectRejected(sub, { headers: bearer(await signAsymmetric(claims(sub), impostor, jwks.keys[0].kid)) }, true);
  });

  it('an EdDSA token that embeds its own key (jwk header) under a published kid is 401', async () => {
    const sub = newUser('embedded');
    const impostor = await createSigningKey('EdDSA');
    const token = await new SignJWT(claims(sub))
      .setProtectedHeader({ alg: 'EdDSA', kid: jwks.keys[0].kid, jwk: { ...impostor.publicJwk, kid: undefined } })
      .sign(impostor.privateKey);
    await expectRejected(sub, { headers: bearer(token) }, true);
  });

  it('an ES256 header over a published Ed25519 key is 401', async () => {
    const sub = newUser('algswap');
    const real = await validToken(sub, 'EdDSA');
    const [, payload, signature] = real.split('.');
    const header = encodeJson({ alg: 'ES256', kid: jwks.keys[0].kid });
    await expectRejected(sub, { headers: bearer(`${header}.${payload}.${signature}`) }, true);
  });
});

describe('tokens that are accepted', () => {
  it('a Better Auth-shaped EdDSA token from the JWKS creates and lists tasks as its sub, on both route families', async () => {
    const sub = newUser('better');
    const token = await jwks.sign(sub);
    const created = await t.app.inject({ method: 'POST', url: '/api/tasks', headers: bearer(token), payload: { title: 'Buy milk' } });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ user_id: sub, title: 'Buy milk', completed: false });

    const viaPath = await t.app.inject({
      method: 'POST',
      url: `/api/${sub}/tasks`,
      headers: bearer(token),
      payload: { title: 'Walk the dog' },
    });
    expect(viaPath.statusCode).toBe(201);
    expect(viaPath.json().user_id).toBe(sub);

    for (const url of ['/api/tasks', `/api/${sub}/tasks`]) {
      const listed = await list(bearer(token), url);
      expect(listed.statusCode).toBe(200);
      expect(listed.json().map((task: { id: string }) => task.id)).toEqual([viaPath.json().id, created.json().id]);
    }
  });

  it('the Bearer scheme is case-insensitive', async () => {
    const sub = newUser('case');
    const listed = await list({ authorization: `bearer ${await jwks.sign(sub)}` });
    expect(listed.statusCode).toBe(200);
  });

  it('an HS256 token with the configured issuer and audience works', async () => {
    const sub = newUser('hs');
    const token = await mintHs256Token({ secret: TEST_JWT_SECRET, sub, issuer: jwks.baseUrl, audience: jwks.baseUrl });
    const created = await create(bearer(token));
    expect(created.statusCode).toBe(201);
    expect(created.json().user_id).toBe(sub);
    expect((await list(bearer(token))).json()).toEqual([created.json()]);
  });

  it('an HS256 token without issuer and audience (tokenFor) is 401 when they are configured', async () => {
    const sub = newUser('hsnoiss');
    await expectRejected(sub, { headers: bearer(await tokenFor(sub)) }, true);
  });

  it('a valid token whose sub has never been seen lists no tasks', async () => {
    for (const family of families) {
      const listed = await list(bearer(await validToken(newUser('stranger'), family)));
      expect(listed.statusCode).toBe(200);
      expect(listed.json()).toEqual([]);
    }
  });

  it("a token for one user cannot use another user's path (403, not a 401)", async () => {
    const alice = newUser('alice');
    const bob = newUser('bob');
    const response = await list(bearer(await jwks.sign(alice)), `/api/${bob}/tasks`);
    expect(response.statusCode).toBe(403);
  });
});

describe('which keys are configured decides which tokens verify', () => {
  it('with only JWT_SECRET, a valid EdDSA token is 401 and the JWKS is never fetched', async () => {
    const server = await startJwksServer();
    const app = await createTestApp({ verifier: { secret: TEST_JWT_SECRET, issuer: server.baseUrl, audience: [server.baseUrl] } });
    try {
      const sub = newUser('secretonly');
      const rejected = await app.app.inject({ url: '/api/tasks', headers: bearer(await server.sign(sub)) });
      expectProblem401(rejected, true);
      const accepted = await app.app.inject({
        url: '/api/tasks',
        headers: bearer(await mintHs256Token({ secret: TEST_JWT_SECRET, sub, issuer: server.baseUrl, audience: server.baseUrl })),
      });
      expect(accepted.statusCode).toBe(200);
      expect(server.fetches).toBe(0);
    } finally {
      await app.close();
      await server.close();
    }
  });

  it('with only JWKS_URL, a valid HS256 token is 401, and so is the key-confusion attack', async () => {
    const server = await startJwksServer();
    const app = await createTestApp({
      verifier: { secret: undefined, jwksUrl: server.jwksUrl, issuer: server.baseUrl, audience: [server.baseUrl] },
    });
    try {
      const sub = newUser('jwksonly');
      const hs = await mintHs256Token({ secret: TEST_JWT_SECRET, sub, issuer: server.baseUrl, audience: server.baseUrl });
      expectProblem401(await app.app.inject({ url: '/api/tasks', headers: bearer(hs) }), true);
      expectProblem401(await app.app.inject({ url: '/api/tasks', headers: bearer(await tokenFor(sub)) }), true);

      const key = server.keys[0];
      for (const secret of [JSON.stringify(key.publicJwk), key.publicJwk.x!]) {
        const forged = await new SignJWT({ sub, iss: server.baseUrl, aud: server.baseUrl, exp: now() + 600 })
          .setProtectedHeader({ alg: 'HS256', kid: key.kid })
          .sign(new TextEncoder().encode(secret));
        expectProblem401(await app.app.inject({ url: '/api/tasks', headers: bearer(forged) }), true);
      }

      const accepted = await app.app.inject({ url: '/api/tasks', headers: bearer(await server.sign(sub)) });
      expect(accepted.statusCode).toBe(200);
      expect(accepted.json()).toEqual([]);
    } finally {
      await app.close();
      await server.close();
    }
  });
});

describe('the JWKS endpoint', () => {
  it('a key published after the first fetch (ES256 rotation) is picked up without a restart', async () => {
    const server = await startJwksServer();
    // A short cooldown so the test need not wait the default 30 s between refetches.
    const app = await createTestApp({
      verifier: { jwksUrl: server.jwksUrl, issuer: server.baseUrl, audience: [server.baseUrl], jwksCooldownMs: 200 },
    });
    try {
      const sub = newUser('rotation');
      const first = await app.app.inject({ url: '/api/tasks', headers: bearer(await server.sign(sub)) });
      expect(first.statusCode).toBe(200);
      expect(server.fetches).toBe(1);

      await new Promise((resolve) => setTimeout(resolve, 300));
      const rotated = await createSigningKey('ES256');
      server.publish(rotated);
      const token = await server.sign(sub, { key: rotated });
      const created = await app.app.inject({ method: 'POST', url: '/api/tasks', headers: bearer(token), payload: { title: 'after rotation' } });
      expect(created.statusCode).toBe(201);
      expect(created.json().user_id).toBe(sub);
      expect(server.fetches).toBe(2);

      // The old key is still published and still works.
      const old = await app.app.inject({ url: '/api/tasks', headers: bearer(await server.sign(sub)) });
      expect(old.statusCode).toBe(200);
      expect(old.json()).toEqual([created.json()]);
    } finally {
      await app.close();
      await server.close();
    }
  });

  it('answering 500 before the first fetch makes a valid token 503 with Retry-After, not 401; it recovers by itself', async () => {
    const server = await startJwksServer();
    const app = await createTestApp({
      verifier: { jwksUrl: server.jwksUrl, issuer: server.baseUrl, audience: [server.baseUrl] },
    });
    try {
      server.failing = true;
      const sub = newUser('jwksdown');
      const token = await server.sign(sub);
      const response = await app.app.inject({ url: '/api/tasks', headers: bearer(token) });
      expect(server.fetches).toBeGreaterThanOrEqual(1);
      expect(response.statusCode).toBe(503);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.headers['retry-after']).toMatch(/^\d+$/);
      expect(response.headers['www-authenticate']).toBeUndefined();
      expect(response.json()).toMatchObject({ type: '/problems/unavailable', status: 503 });

      server.failing = false;
      const recovered = await app.app.inject({ url: '/api/tasks', headers: bearer(token) });
      expect(recovered.statusCode).toBe(200);
    } finally {
      await app.close();
      await server.close();
    }
  });

  it('being unreachable (connection refused) makes a valid token 503 with Retry-After, not 401', async () => {
    const server = await startJwksServer();
    const token = await server.sign(newUser('jwksgone'));
    await server.close();
    const app = await createTestApp({
      verifier: { jwksUrl: server.jwksUrl, issuer: server.baseUrl, audience: [server.baseUrl] },
    });
    try {
      const response = await app.app.inject({ url: '/api/tasks', headers: bearer(token) });
      expect(response.statusCode).toBe(503);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.headers['retry-after']).toMatch(/^\d+$/);
    } finally {
      await app.close();
    }
  });

  it('while the JWKS is down, HS256 tokens still verify and forged tokens are still 401', async () => {
    const server = await startJwksServer();
    const app = await createTestApp({
      verifier: { secret: TEST_JWT_SECRET, jwksUrl: server.jwksUrl, issuer: server.baseUrl, audience: [server.baseUrl] },
    });
    try {
      server.failing = true;
      const sub = newUser('hsduringoutage');
      const hs = await mintHs256Token({ secret: TEST_JWT_SECRET, sub, issuer: server.baseUrl, audience: server.baseUrl });
      expect((await app.app.inject({ url: '/api/tasks', headers: bearer(hs) })).statusCode).toBe(200);
      const forged = await signHs256({ sub, iss: server.baseUrl, aud: server.baseUrl, exp: now() + 600 }, 'wrong-secret-wrong-secret-wrong-secret');
      expectProblem401(await app.app.inject({ url: '/api/tasks', headers: bearer(forged) }), true);
      expectProblem401(await app.app.inject({ url: '/api/tasks', headers: bearer(`${encodeJson({ alg: 'none' })}.${encodeJson({ sub })}.`) }), true);
    } finally {
      await app.close();
      await server.close();
    }
  });

  it('a flood of 20 tokens with random unknown kids triggers at most a couple of refetches', async () => {
    const server = await startJwksServer();
    const app = await createTestApp({
      verifier: { jwksUrl: server.jwksUrl, issuer: server.baseUrl, audience: [server.baseUrl] },
    });
    try {
      const sub = newUser('flood');
      expect((await app.app.inject({ url: '/api/tasks', headers: bearer(await server.sign(sub)) })).statusCode).toBe(200);
      const before = server.fetches;
      expect(before).toBe(1);

      const strangers = await Promise.all(Array.from({ length: 20 }, () => createSigningKey('EdDSA')));
      const tokens = await Promise.all(
        strangers.map((key) => signAsymmetric({ sub, iss: server.baseUrl, aud: server.baseUrl, iat: now(), exp: now() + 600 }, key)),
      );
      // Half at once, half one after another.
      const concurrent = await Promise.all(tokens.slice(0, 10).map((token) => app.app.inject({ url: '/api/tasks', headers: bearer(token) })));
      const sequential: LightMyRequestResponse[] = [];
      for (const token of tokens.slice(10)) sequential.push(await app.app.inject({ url: '/api/tasks', headers: bearer(token) }));
      // Refused: 401 once a refetch shows the kid unknown, 503 while another refetch is not allowed.
      for (const response of [...concurrent, ...sequential]) {
        if (response.statusCode === 503) expect(response.headers['retry-after']).toMatch(/^\d+$/);
        else expectProblem401(response, true);
      }

      expect(server.fetches - before).toBeLessThanOrEqual(2);
      // The real key still verifies after the flood.
      expect((await app.app.inject({ url: '/api/tasks', headers: bearer(await server.sign(sub)) })).statusCode).toBe(200);
    } finally {
      await app.close();
      await server.close();
    }
  });
});
