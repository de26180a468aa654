// Storage per user is bounded: MAX_BYTES_PER_USER over titles, descriptions
// and idempotency records together, and MAX_IDEMPOTENCY_KEYS_PER_USER live
// keys, both enforced by PostgreSQL under the user's advisory lock (so
// parallel writers cannot overshoot), each with its own 409 problem type.
// And the advisory-lock keys of two users cannot collide.
import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appUrl, becomeUser, connect, committedAsUser, errorOf } from './support/database.js';
import { createTestApp, expectProblem, testUser, type TestApp, type TestUser } from './support/http.js';

const MAX_BYTES = 4096;
const MAX_KEYS = 5;

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ maxBytesPerUser: MAX_BYTES, maxIdempotencyKeysPerUser: MAX_KEYS });
});
afterAll(async () => {
  await t?.close();
});

function create(who: TestUser, body: Record<string, unknown>, key?: string): Promise<LightMyRequestResponse> {
  return t.app.inject({
    method: 'POST',
    url: '/api/tasks',
    headers: { ...who.headers, ...(key === undefined ? {} : { 'idempotency-key': key }) },
    payload: body,
  });
}

async function list(who: TestUser): Promise<Record<string, any>[]> {
  const response = await t.app.inject({ url: '/api/tasks', headers: who.headers });
  expect(response.statusCode).toBe(200);
  return response.json();
}

function expectQuotaReached(response: LightMyRequestResponse) {
  const problem = expectProblem(response, 409, '/problems/storage-quota-reached');
  expect(problem.detail).toContain(String(MAX_BYTES));
  expect(`${problem.title} ${problem.detail}`).not.toMatch(/PT409|api\.|advisory|sqlstate/i);
  expect(response.headers.location).toBeUndefined();
}

/** A title of 10 bytes and a description making the task `bytes` bytes. */
const sized = (bytes: number, title = 'ten bytes!') => ({ title, description: 'd'.repeat(bytes - title.length) });

describe('the per-user byte quota', () => {
  it('allows tasks up to the quota and refuses the one that would pass it, storing nothing', async () => {
    const alice = await testUser('quota-basic');
    for (let i = 0; i < 4; i++) expect((await create(alice, sized(1000))).statusCode).toBe(201);
    expectQuotaReached(await create(alice, sized(97)));
    expect(await list(alice)).toHaveLength(4);
    // Exactly up to the quota fits.
    expect((await create(alice, sized(96))).statusCode).toBe(201);
    expectQuotaReached(await create(alice, { title: 'x' }));
  });

  it('counts UTF-8 bytes, not characters', async () => {
    const alice = await testUser('quota-utf8');
    // 1,100 characters of 4 bytes each are 4,400 bytes.
    expectQuotaReached(await create(alice, { title: 'emoji', description: '😀'.repeat(1100) }));
    expect(await list(alice)).toEqual([]);
  });

  it('counts growth on PATCH and PUT, never refuses shrinking, and frees bytes on delete', async () => {
    const alice = await testUser('quota-update');
    const first = (await create(alice, sized(2000))).json();
    const second = (await create(alice, sized(2000))).json();

    const grow = await t.app.inject({
      method: 'PATCH',
      url: `/api/tasks/${first.id}`,
      headers: alice.headers,
      payload: { description: 'g'.repeat(2200) },
    });
    expectQuotaReached(grow);
    const put = await t.app.inject({
      method: 'PUT',
      url: `/api/tasks/${first.id}`,
      headers: alice.headers,
      payload: { title: first.title, description: 'g'.repeat(2200), completed: false },
    });
    expectQuotaReached(put);
    const unchanged = await t.app.inject({ url: `/api/tasks/${first.id}`, headers: alice.headers });
    expect(unchanged.json()).toEqual(first);

    const shrink = await t.app.inject({ method: 'PATCH', url: `/api/tasks/${first.id}`, headers: alice.headers, payload: { description: 'short' } });
    expect(shrink.statusCode).toBe(200);
    const toggle = await t.app.inject({ method: 'PATCH', url: `/api/tasks/${second.id}/complete`, headers: alice.headers });
    expect(toggle.statusCode).toBe(200);

    const deleted = await t.app.inject({ method: 'DELETE', url: `/api/tasks/${second.id}`, headers: alice.headers });
    expect(deleted.statusCode).toBe(204);
    expect((await create(alice, sized(3000))).statusCode).toBe(201);
  });

  it('counts idempotency records: create-and-delete with fresh keys cannot store without bound', async () => {
    const alice = await testUser('quota-churn');
    let refused: LightMyRequestResponse | undefined;
    for (let i = 0; i < 40 && !refused; i++) {
      const response = await create(alice, sized(900), `churn-${i}-${randomUUID()}`);
      if (response.statusCode !== 201) {
        refused = response;
        break;
      }
      const deleted = await t.app.inject({ method: 'DELETE', url: `/api/tasks/${response.json().id}`, headers: alice.headers });
      expect(deleted.statusCode).toBe(204);
    }
    expect(refused, 'a refusal before 40 cycles').toBeDefined();
    expectQuotaReached(refused!);
    expect(await list(alice)).toEqual([]);
    // The records stored stay within the quota.
    const stored = await committedAsUser(alice.sub, async (client) => (await client.query('select api.stored_bytes() as b')).rows[0].b);
    expect(Number(stored)).toBeLessThanOrEqual(MAX_BYTES);
  });

  it('20 parallel creates cannot overshoot the quota together', async () => {
    const alice = await testUser('quota-race');
    const responses = await Promise.all(Array.from({ length: 20 }, () => create(alice, sized(1000))));
    const created = responses.filter((response) => response.statusCode === 201);
    expect(created).toHaveLength(4);
    for (const response of responses.filter((r) => r.statusCode !== 201)) expectQuotaReached(response);
    expect(await list(alice)).toHaveLength(4);
  });

  it('parallel PATCHes growing different tasks cannot overshoot the quota together', async () => {
    const alice = await testUser('quota-race-update');
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await create(alice, { title: `t${i}` })).json().id);
    const responses = await Promise.all(
      ids.map((id) => t.app.inject({ method: 'PATCH', url: `/api/tasks/${id}`, headers: alice.headers, payload: { description: 'p'.repeat(1000) } })),
    );
    expect(responses.filter((response) => response.statusCode === 200)).toHaveLength(4);
    for (const response of responses.filter((r) => r.statusCode !== 200)) expectQuotaReached(response);
    const bytes = (await list(alice)).reduce((sum, task) => sum + task.title.length + (task.description?.length ?? 0), 0);
    expect(bytes).toBeLessThanOrEqual(MAX_BYTES);
  });

  it('holds for a plain INSERT into api.tasks (as PostgREST would send it), not only through the API', async () => {
    const alice = await testUser('quota-sql');
    const error = await committedAsUser(alice.sub, async (client) => {
      await client.query("select set_config('task_api.max_bytes_per_user', '100', true)");
      return errorOf(client, 'insert into api.tasks (title, description) values ($1, $2)', ['plain', 'x'.repeat(200)]);
    });
    expect(error?.code).toBe('PT409');
    expect(await list(alice)).toEqual([]);
  });
});

describe('the per-user cap on live Idempotency-Keys', () => {
  it(`allows ${MAX_KEYS} keys, refuses the next with its own 409, and still replays the old ones`, async () => {
    const alice = await testUser('keys-cap');
    const keys = Array.from({ length: MAX_KEYS }, (_, i) => `cap-${i}-${randomUUID()}`);
    const first = [];
    for (const key of keys) {
      const response = await create(alice, { title: key.slice(0, 8) }, key);
      expect(response.statusCode).toBe(201);
      first.push(response.json());
    }
    const over = await create(alice, { title: 'over' }, `cap-over-${randomUUID()}`);
    const problem = expectProblem(over, 409, '/problems/idempotency-key-limit-reached');
    expect(problem.detail).toContain(String(MAX_KEYS));
    expect(await list(alice)).toHaveLength(MAX_KEYS);

    const replay = await create(alice, { title: keys[0].slice(0, 8) }, keys[0]);
    expect(replay.statusCode).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json()).toEqual(first[0]);
    // Creates without a key are not affected.
    expect((await create(alice, { title: 'no key' })).statusCode).toBe(201);
  });

  it('expired keys do not count', async () => {
    const alice = await testUser('keys-expired');
    for (let i = 0; i < MAX_KEYS; i++) expect((await create(alice, { title: `k${i}` }, `exp-${i}-${randomUUID()}`)).statusCode).toBe(201);
    const owner = await connect();
    try {
      await owner.query("update api.idempotency_keys set expires_at = now() - interval '1 second' where user_id = $1", [alice.sub]);
    } finally {
      await owner.end();
    }
    expect((await create(alice, { title: 'fresh' }, `exp-new-${randomUUID()}`)).statusCode).toBe(201);
  });
});

describe('advisory-lock keys', () => {
  // With the lock keyed on 'prefix:' || sub || ':' || key, these two pairs
  // made the same string and blocked each other.
  it('user "u" with key "x:k" and user "u:x" with key "k" proceed independently', async () => {
    const u = `lock-${randomUUID()}`;
    const first = await connect(appUrl());
    const second = await connect(appUrl());
    try {
      await first.query('begin');
      await becomeUser(first, u);
      await first.query('select * from api.create_task_idempotent($1, $2)', ['x:k', JSON.stringify({ title: 'first' })]);
      // first's transaction is still open: its idempotency lock and its user-limits lock are held.

      await second.query('begin');
      await becomeUser(second, `${u}:x`);
      await second.query("set local lock_timeout = '2s'");
      const result = await second.query('select replayed from api.create_task_idempotent($1, $2)', ['k', JSON.stringify({ title: 'second' })]);
      expect(result.rows).toEqual([{ replayed: false }]);
      await second.query('commit');
      await first.query('commit');
    } finally {
      await first.end();
      await second.end();
    }
  });

  it('the key of a (purpose, user, key) tuple is not the key of the same text split differently', async () => {
    const client = await connect();
    try {
      const { rows } = await client.query(
        "select api.advisory_lock_key('api.idempotency_keys', 'u', 'x:k') = api.advisory_lock_key('api.idempotency_keys', 'u:x', 'k') as same",
      );
      expect(rows[0].same).toBe(false);
    } finally {
      await client.end();
    }
  });
});
