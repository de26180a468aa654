// Resource limits, end to end: the per-user task limit (MAX_TASKS_PER_USER,
// set per transaction by the gateway and enforced by api.create_task under a
// per-user lock, so concurrent creates cannot overshoot it) and the 64 KiB
// body limit.
import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createTestApp, expectProblem, newUser, testUser, tokenFor, type TestApp, type TestUser } from './support/http.js';

const LIMIT = 3;

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ maxTasksPerUser: LIMIT });
});
afterAll(async () => {
  await t?.close();
});

type User = TestUser;
const user = testUser;

function create(who: User, title: string, options: { url?: string; key?: string } = {}): Promise<LightMyRequestResponse> {
  return t.app.inject({
    method: 'POST',
    url: options.url ?? '/api/tasks',
    headers: { ...who.headers, ...(options.key === undefined ? {} : { 'idempotency-key': options.key }) },
    payload: { title },
  });
}

async function list(who: User): Promise<Record<string, any>[]> {
  const response = await t.app.inject({ url: '/api/tasks', headers: who.headers });
  expect(response.statusCode).toBe(200);
  return response.json();
}


function expectLimitReached(response: LightMyRequestResponse) {
  const problem = expectProblem(response, 409, '/problems/task-limit-reached');
  expect(problem.detail).toMatch(/limit/i);
  expect(problem.detail).toContain(String(LIMIT));
  expect(`${problem.title} ${problem.detail}`).not.toMatch(/PT409|api\.|advisory|sqlstate/i);
  expect(response.headers.location).toBeUndefined();
  return problem;
}

async function fill(who: User, count = LIMIT, options: { url?: string } = {}) {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const response = await create(who, `task ${i + 1}`, options);
    expect(response.statusCode, response.body).toBe(201);
    ids.push(response.json().id);
  }
  return ids;
}

describe('the per-user task limit', () => {
  it(`allows ${LIMIT} tasks and refuses the next with 409 task-limit-reached`, async () => {
    const alice = await user('limit-alice');
    await fill(alice);
    expectLimitReached(await create(alice, 'one too many'));
    expectLimitReached(await create(alice, 'still too many'));
    expect(await list(alice)).toHaveLength(LIMIT);
  });

  it('frees a slot when a task is deleted, and only one', async () => {
    const alice = await user('limit-delete');
    const ids = await fill(alice);
    expectLimitReached(await create(alice, 'blocked'));

    const deleted = await t.app.inject({ method: 'DELETE', url: `/api/tasks/${ids[0]}`, headers: alice.headers });
    expect(deleted.statusCode).toBe(204);

    const again = await create(alice, 'fits again');
    expect(again.statusCode).toBe(201);
    expectLimitReached(await create(alice, 'full again'));
    expect((await list(alice)).map((task) => task.title).sort()).toEqual(['fits again', 'task 2', 'task 3']);
  });

  it('counts only the caller: another user is unaffected', async () => {
    const alice = await user('limit-full');
    const bob = await user('limit-other');
    await fill(alice);
    expectLimitReached(await create(alice, 'blocked'));

    await fill(bob);
    expectLimitReached(await create(bob, 'blocked too'));
    expect(await list(alice)).toHaveLength(LIMIT);
    expect(await list(bob)).toHaveLength(LIMIT);
  });

  it('does not count against updates: a user at the limit can still change and toggle tasks', async () => {
    const alice = await user('limit-update');
    const [id] = await fill(alice);
    const patched = await t.app.inject({ method: 'PATCH', url: `/api/tasks/${id}`, headers: alice.headers, payload: { title: 'renamed' } });
    expect(patched.statusCode).toBe(200);
    const toggled = await t.app.inject({ method: 'PATCH', url: `/api/tasks/${id}/complete`, headers: alice.headers });
    expect(toggled.statusCode).toBe(200);
    const replaced = await t.app.inject({
      method: 'PUT',
      url: `/api/tasks/${id}`,
      headers: alice.headers,
      payload: { title: 'replaced', description: null, completed: false },
    });
    expect(replaced.statusCode).toBe(200);
  });

  it('applies to the /api/{user_id}/tasks family too (one count for both)', async () => {
    const alice = await user('limit-family');
    const url = `/api/${alice.sub}/tasks`;
    await fill(alice, LIMIT - 1, { url });
    expect((await create(alice, 'last one')).statusCode).toBe(201);
    expectLimitReached(await create(alice, 'over', { url }));
    expectLimitReached(await create(alice, 'over'));
  });

  it('applies to creates with an Idempotency-Key, without spending the key', async () => {
    const alice = await user('limit-idem');
    const ids = await fill(alice);
    const key = `key-${randomUUID()}`;

    expectLimitReached(await create(alice, 'keyed', { key }));
    expectLimitReached(await create(alice, 'keyed', { key }));

    const deleted = await t.app.inject({ method: 'DELETE', url: `/api/tasks/${ids[0]}`, headers: alice.headers });
    expect(deleted.statusCode).toBe(204);

    // The refused attempts recorded nothing: this is the key's first success.
    const created = await create(alice, 'keyed', { key });
    expect(created.statusCode).toBe(201);
    expect(created.headers['idempotent-replayed']).toBeUndefined();

    // At the limit again, a replay of that key is still answered (it creates nothing).
    const replay = await create(alice, 'keyed', { key });
    expect(replay.statusCode).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json()).toEqual(created.json());
    expect(await list(alice)).toHaveLength(LIMIT);
  });

  it(`10 concurrent creates by a fresh user produce exactly ${LIMIT} tasks`, async () => {
    const alice = await user('limit-race');
    const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => create(alice, `racer ${i}`)));

    const created = responses.filter((response) => response.statusCode === 201);
    const refused = responses.filter((response) => response.statusCode !== 201);
    expect(created).toHaveLength(LIMIT);
    expect(refused).toHaveLength(10 - LIMIT);
    for (const response of refused) expectLimitReached(response);

    const tasks = await list(alice);
    expect(tasks.map((task) => task.id).sort()).toEqual(created.map((response) => response.json().id).sort());
  });

  it(`10 concurrent creates with distinct Idempotency-Keys also produce exactly ${LIMIT} tasks`, async () => {
    const alice = await user('limit-race-idem');
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) => create(alice, `keyed racer ${i}`, { key: `key-${i}-${randomUUID()}` })),
    );
    const created = responses.filter((response) => response.statusCode === 201);
    expect(created).toHaveLength(LIMIT);
    for (const response of responses.filter((r) => r.statusCode !== 201)) expectLimitReached(response);
    expect(await list(alice)).toHaveLength(LIMIT);
  });

  it('concurrent creates by different users do not hold each other back', async () => {
    const users = await Promise.all(Array.from({ length: 4 }, (_, i) => user(`limit-many-${i}`)));
    const responses = await Promise.all(users.flatMap((who) => Array.from({ length: LIMIT }, (_, i) => create(who, `t${i}`))));
    for (const response of responses) expect(response.statusCode, response.body).toBe(201);
    for (const who of users) expect(await list(who)).toHaveLength(LIMIT);
  });
});

describe('the 64 KiB body limit', () => {
  const oversized = (size = 64 * 1024 + 1) => {
    const filler = 'x'.repeat(size);
    return JSON.stringify({ title: 'big', description: filler });
  };

  it.each([
    ['POST', '/api/tasks'],
    ['PUT', '/api/tasks/00000000-0000-4000-8000-000000000000'],
    ['PATCH', '/api/tasks/00000000-0000-4000-8000-000000000000'],
  ] as const)('%s with a body over 64 KiB is 413 problem+json', async (method, url) => {
    const alice = await user('limit-body');
    const response = await t.app.inject({
      method,
      url,
      headers: { ...alice.headers, 'content-type': 'application/json' },
      payload: oversized(),
    });
    expectProblem(response, 413, '/problems/body-too-large');
    expect(await list(alice)).toEqual([]);
  });

  it('a body of exactly 64 KiB is not refused for its size', async () => {
    const alice = await user('limit-body-edge');
    const skeleton = JSON.stringify({ title: 'edge', description: '' });
    const body = JSON.stringify({ title: 'edge', description: 'x'.repeat(64 * 1024 - skeleton.length) });
    expect(Buffer.byteLength(body)).toBe(64 * 1024);
    const response = await t.app.inject({
      method: 'POST',
      url: '/api/tasks',
      headers: { ...alice.headers, 'content-type': 'application/json' },
      payload: body,
    });
    // Too long a description (422), but not too large a body (413).
    expectProblem(response, 422, '/problems/validation');
  });

  it('authentication and the path owner are checked before the body size (401, 403 before 413)', async () => {
    const anonymous = await t.app.inject({
      method: 'POST',
      url: '/api/tasks',
      headers: { 'content-type': 'application/json' },
      payload: oversized(),
    });
    expectProblem(anonymous, 401, '/problems/unauthorized');

    const alice = await user('limit-body-owner');
    const bob = await user('limit-body-other');
    const wrongOwner = await t.app.inject({
      method: 'POST',
      url: `/api/${alice.sub}/tasks`,
      headers: { ...bob.headers, 'content-type': 'application/json' },
      payload: oversized(),
    });
    expectProblem(wrongOwner, 403, '/problems/forbidden');
  });
});
