// The cross-user matrix: nothing Bob can send reads, changes or reveals
// Alice's tasks, on either route family, and the checks run in the contract's
// order (401, then path owner 403, then body, then existence/ownership).
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROBLEMS } from '../src/http/problem.js';
import { bearer, createTestApp, newUser, testUser, tokenFor, type TestApp, type TestUser } from './support/http.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const NO_SUCH_TASK = '00000000-0000-4000-8000-000000000000';

type Actor = TestUser;
const actor = testUser;

function send(who: Actor | null, method: Method, url: string, payload?: unknown, headers: Record<string, string> = {}) {
  return t.app.inject({
    method,
    url,
    headers: { ...(who?.headers ?? {}), ...headers },
    ...(payload === undefined ? {} : { payload: payload as string | object }),
  });
}

/** Alice and Bob, and a task of Alice's with text that must never reach Bob. */
async function aliceAndBob() {
  const alice = await actor('alice');
  const bob = await actor('bob');
  const secretTitle = `alice-secret-title-${Math.random().toString(36).slice(2)}`;
  const secretDescription = `alice-secret-description-${Math.random().toString(36).slice(2)}`;
  const created = await send(alice, 'POST', '/api/tasks', { title: secretTitle, description: secretDescription });
  expect(created.statusCode).toBe(201);
  const task = created.json();
  return { alice, bob, task, secretTitle, secretDescription };
}

async function snapshot(owner: Actor, id: string) {
  const response = await send(owner, 'GET', `/api/tasks/${id}`);
  expect(response.statusCode).toBe(200);
  return { body: response.json(), etag: response.headers.etag };
}

async function listOf(who: Actor, family: 'plain' | 'user' = 'plain') {
  const url = family === 'plain' ? '/api/tasks' : `/api/${encodeURIComponent(who.sub)}/tasks`;
  const response = await send(who, 'GET', url);
  expect(response.statusCode).toBe(200);
  return response.json() as { id: string }[];
}

function expectProblem(response: LightMyRequestResponse, status: number) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = response.json();
  expect(body).toMatchObject({ type: expect.any(String), title: expect.any(String), status, detail: expect.any(String) });
  return body;
}

/** A 403 for Bob that tells him nothing about Alice's task. */
function expectForbiddenAndSilent(
  response: LightMyRequestResponse,
  secrets: { secretTitle: string; secretDescription: string; alice: Actor },
) {
  const body = expectProblem(response, 403);
  expect(body.type).toBe(PROBLEMS.forbidden.type);
  expect(response.body).not.toContain(secrets.secretTitle);
  expect(response.body).not.toContain(secrets.secretDescription);
  expect(response.body).not.toContain(secrets.alice.sub);
  expect(response.headers.etag).toBeUndefined();
  expect(response.headers.location).toBeUndefined();
}

const TASK_ROUTES: { name: string; method: Method; suffix: string; payload?: unknown }[] = [
  { name: 'GET one', method: 'GET', suffix: '' },
  { name: 'PUT', method: 'PUT', suffix: '', payload: { title: 'taken over', description: 'by bob', completed: true } },
  { name: 'PATCH', method: 'PATCH', suffix: '', payload: { title: 'taken over', completed: true } },
  { name: 'DELETE', method: 'DELETE', suffix: '' },
  { name: 'PATCH complete (no body)', method: 'PATCH', suffix: '/complete' },
  { name: 'PATCH complete {"completed":true}', method: 'PATCH', suffix: '/complete', payload: { completed: true } },
  { name: 'PATCH complete {"completed":false}', method: 'PATCH', suffix: '/complete', payload: { completed: false } },
];

describe.each([
  { family: '/api/tasks', base: (_bob: Actor) => '/api/tasks' },
  { family: '/api/{bob}/tasks', base: (bob: Actor) => `/api/${encodeURIComponent(bob.sub)}/tasks` },
])("Bob's token on Alice's task id via $family", ({ base }) => {
  it.each(TASK_ROUTES)('$name is 403, reveals nothing and changes nothing', async ({ method, suffix, payload }) => {
    const s = await aliceAndBob();
    const before = await snapshot(s.alice, s.task.id);

    const response = await send(s.bob, method, `${base(s.bob)}/${s.task.id}${suffix}`, payload);
    expectForbiddenAndSilent(response, s);

    const after = await snapshot(s.alice, s.task.id);
    expect(after).toEqual(before);
    expect((await listOf(s.bob)).map((task) => task.id)).not.toContain(s.task.id);
    expect((await listOf(s.bob, 'user')).map((task) => task.id)).not.toContain(s.task.id);
    expect((await listOf(s.alice)).map((task) => task.id)).toEqual([s.task.id]);
  });

  it('with If-Match: * is still 403 and changes nothing', async () => {
    const s = await aliceAndBob();
    const before = await snapshot(s.alice, s.task.id);
    for (const { method, suffix, payload } of TASK_ROUTES.filter((route) => route.method !== 'GET')) {
      const response = await send(s.bob, method, `${base(s.bob)}/${s.task.id}${suffix}`, payload, { 'if-match': '*' });
      expectForbiddenAndSilent(response, s);
    }
    expect(await snapshot(s.alice, s.task.id)).toEqual(before);
  });
});

describe("Bob's list", () => {
  it("never contains Alice's tasks, on either family, while Bob has his own", async () => {
    const s = await aliceAndBob();
    const bobsTask = (await send(s.bob, 'POST', '/api/tasks', { title: 'bob task' })).json();
    await send(s.alice, 'POST', '/api/tasks', { title: 'another of alice' });

    for (const family of ['plain', 'user'] as const) {
      const listed = await listOf(s.bob, family);
      expect(listed).toEqual([bobsTask]);
      expect(JSON.stringify(listed)).not.toContain(s.alice.sub);
    }
    expect(await listOf(s.alice)).toHaveLength(2);
  });
});

describe("/api/{alice}/tasks… with Bob's token", () => {
  const aliceBase = (alice: Actor) => `/api/${encodeURIComponent(alice.sub)}/tasks`;

  it('GET (list) is 403 and reveals nothing', async () => {
    const s = await aliceAndBob();
    const response = await send(s.bob, 'GET', aliceBase(s.alice));
    expectForbiddenAndSilent(response, s);
  });

  it('POST (create) is 403 and creates nothing for Alice or Bob', async () => {
    const s = await aliceAndBob();
    const response = await send(s.bob, 'POST', aliceBase(s.alice), { title: 'planted by bob', description: 'x' });
    expectForbiddenAndSilent(response, s);
    expect((await listOf(s.alice)).map((task) => task.id)).toEqual([s.task.id]);
    expect(await listOf(s.bob)).toEqual([]);
  });

  it.each(TASK_ROUTES)("$name on Alice's task is 403 and changes nothing", async ({ method, suffix, payload }) => {
    const s = await aliceAndBob();
    const before = await snapshot(s.alice, s.task.id);
    const response = await send(s.bob, method, `${aliceBase(s.alice)}/${s.task.id}${suffix}`, payload);
    expectForbiddenAndSilent(response, s);
    expect(await snapshot(s.alice, s.task.id)).toEqual(before);
    expect(await listOf(s.bob)).toEqual([]);
  });

  it.each(TASK_ROUTES)('$name is 403 before any lookup: also for an id of no task and a malformed id', async ({ method, suffix, payload }) => {
    const s = await aliceAndBob();
    for (const id of [NO_SUCH_TASK, 'not-a-uuid']) {
      const response = await send(s.bob, method, `${aliceBase(s.alice)}/${id}${suffix}`, payload);
      expectForbiddenAndSilent(response, s);
    }
  });

  it('Alice on her own /api/{alice}/tasks is served (the 403 is about the caller, not the path)', async () => {
    const s = await aliceAndBob();
    const response = await send(s.alice, 'GET', aliceBase(s.alice));
    expect(response.statusCode).toBe(200);
    expect(response.json().map((task: { id: string }) => task.id)).toEqual([s.task.id]);
  });
});

describe('check order', () => {
  const invalidBodies: { name: string; payload: string; contentType: string }[] = [
    { name: 'a body failing validation', payload: JSON.stringify({ nope: 1 }), contentType: 'application/json' },
    { name: 'malformed JSON', payload: '{"title": ', contentType: 'application/json' },
    { name: 'a text/plain body', payload: 'title', contentType: 'text/plain' },
    { name: 'a body over 64 KiB', payload: JSON.stringify({ title: 'x', description: 'x'.repeat(70 * 1024) }), contentType: 'application/json' },
  ];

  it.each(invalidBodies)("Bob with $name on POST /api/{alice}/tasks is 403: the path owner is checked before the body", async ({ payload, contentType }) => {
    const s = await aliceAndBob();
    const response = await send(s.bob, 'POST', `/api/${encodeURIComponent(s.alice.sub)}/tasks`, payload, { 'content-type': contentType });
    expectForbiddenAndSilent(response, s);
    expect(await listOf(s.bob)).toEqual([]);
    expect(await listOf(s.alice)).toHaveLength(1);
  });

  it.each(invalidBodies)("Bob with $name on PUT and PATCH /api/{alice}/tasks/{id} is 403", async ({ payload, contentType }) => {
    const s = await aliceAndBob();
    const before = await snapshot(s.alice, s.task.id);
    for (const [method, suffix] of [['PUT', ''], ['PATCH', ''], ['PATCH', '/complete']] as const) {
      const url = `/api/${encodeURIComponent(s.alice.sub)}/tasks/${s.task.id}${suffix}`;
      const response = await send(s.bob, method, url, payload, { 'content-type': contentType });
      expectForbiddenAndSilent(response, s);
    }
    expect(await snapshot(s.alice, s.task.id)).toEqual(before);
  });

  it.each(invalidBodies)('no token with $name is 401 before anything else, on every route', async ({ payload, contentType }) => {
    const s = await aliceAndBob();
    const before = await snapshot(s.alice, s.task.id);
    const targets: [Method, string][] = [
      ['POST', '/api/tasks'],
      ['POST', `/api/${encodeURIComponent(s.alice.sub)}/tasks`],
      ['PUT', `/api/tasks/${s.task.id}`],
      ['PATCH', `/api/tasks/${s.task.id}`],
      ['PATCH', `/api/tasks/${s.task.id}/complete`],
      ['PUT', `/api/${encodeURIComponent(s.alice.sub)}/tasks/${NO_SUCH_TASK}`],
      ['PATCH', `/api/tasks/not-a-uuid`],
    ];
    for (const [method, url] of targets) {
      const response = await send(null, method, url, payload, { 'content-type': contentType });
      const body = expectProblem(response, 401);
      expect(body.type).toBe(PROBLEMS.unauthorized.type);
      expect(response.headers['www-authenticate']).toMatch(/^Bearer\b/);
      expect(response.body).not.toContain(s.secretTitle);
    }
    expect(await snapshot(s.alice, s.task.id)).toEqual(before);
    expect(await listOf(s.alice)).toHaveLength(1);
  });

  it('no token is 401 on every read and delete route, and a bad token is 401 invalid_token', async () => {
    const s = await aliceAndBob();
    const urls = [
      ['GET', '/api/tasks'],
      ['GET', `/api/tasks/${s.task.id}`],
      ['DELETE', `/api/tasks/${s.task.id}`],
      ['GET', `/api/${encodeURIComponent(s.alice.sub)}/tasks`],
      ['GET', `/api/${encodeURIComponent(s.alice.sub)}/tasks/${s.task.id}`],
      ['DELETE', `/api/${encodeURIComponent(s.alice.sub)}/tasks/${s.task.id}`],
    ] as const;
    for (const [method, url] of urls) {
      const none = await send(null, method, url);
      expectProblem(none, 401);
      expect(none.headers['www-authenticate']).toMatch(/^Bearer\b/);
      expect(none.body).not.toContain(s.secretTitle);

      const bad = await send(null, method, url, undefined, { authorization: 'Bearer not.a.jwt' });
      expectProblem(bad, 401);
      expect(bad.headers['www-authenticate']).toMatch(/^Bearer\b.*error="invalid_token"/);
      expect(bad.body).not.toContain(s.secretTitle);
    }
    expect((await snapshot(s.alice, s.task.id)).body.title).toBe(s.secretTitle);
  });

  it('Bob sending an invalid body to PUT/PATCH on Alice’s task id is 422: the body is validated before ownership', async () => {
    const s = await aliceAndBob();
    const before = await snapshot(s.alice, s.task.id);
    for (const [method, suffix, payload] of [
      ['PUT', '', { description: 'x' }],
      ['PATCH', '', { user_id: s.bob.sub }],
      ['PATCH', '/complete', { completed: 'true' }],
    ] as const) {
      const response = await send(s.bob, method, `/api/tasks/${s.task.id}${suffix}`, payload);
      const body = expectProblem(response, 422);
      expect(response.body).not.toContain(s.secretTitle);
      expect(body.errors.length).toBeGreaterThan(0);
    }
    expect(await snapshot(s.alice, s.task.id)).toEqual(before);
  });
});

describe('user_id in a body', () => {
  it("Bob POSTing a valid task with user_id: alice to /api/tasks is 422 naming user_id, and nothing is created", async () => {
    const s = await aliceAndBob();
    for (const url of ['/api/tasks', `/api/${encodeURIComponent(s.bob.sub)}/tasks`]) {
      const response = await send(s.bob, 'POST', url, { title: 'planted', user_id: s.alice.sub });
      const body = expectProblem(response, 422);
      expect(body.type).toBe(PROBLEMS.validation.type);
      expect(body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'user_id' })]));
    }
    expect(await listOf(s.bob)).toEqual([]);
    expect((await listOf(s.alice)).map((task) => task.id)).toEqual([s.task.id]);
  });

  it("Bob cannot hand his own task to Alice with user_id in PUT or PATCH (422, unchanged)", async () => {
    const s = await aliceAndBob();
    const bobsTask = await send(s.bob, 'POST', '/api/tasks', { title: 'bob task' });
    const before = await snapshot(s.bob, bobsTask.json().id);
    for (const [method, payload] of [
      ['PUT', { title: 'bob task', description: null, completed: false, user_id: s.alice.sub }],
      ['PATCH', { user_id: s.alice.sub }],
      ['PATCH', { title: 'renamed', user_id: s.alice.sub }],
    ] as const) {
      const response = await send(s.bob, method, `/api/tasks/${bobsTask.json().id}`, payload);
      const body = expectProblem(response, 422);
      expect(body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'user_id' })]));
    }
    expect(await snapshot(s.bob, bobsTask.json().id)).toEqual(before);
    expect((await listOf(s.alice)).map((task) => task.id)).toEqual([s.task.id]);
  });
});
