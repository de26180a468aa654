// Idempotency-Key on POST /tasks, end to end: replays of the original 201,
// 422 for a reused key with another body, 409 while the first request is
// still running, keys per user, stored in PostgreSQL (so they survive a new
// pool / another replica) under row-level security, and 24-hour expiry with
// api.purge_expired_idempotency_keys().
import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  bearer,
  createTestApp,
  expectProblem as expectProblemResponse,
  newUser,
  testUser,
  tokenFor,
  type TestApp,
  type TestUser,
} from './support/http.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t?.close();
});

type User = TestUser;
const user = testUser;

const newKey = () => `key-${randomUUID()}`;

function post(
  who: User,
  payload: Record<string, unknown>,
  key?: string,
  options: { url?: string; app?: TestApp } = {},
): Promise<LightMyRequestResponse> {
  return (options.app ?? t).app.inject({
    method: 'POST',
    url: options.url ?? '/api/tasks',
    headers: { ...who.headers, ...(key === undefined ? {} : { 'idempotency-key': key }) },
    payload,
  });
}

async function list(who: User): Promise<Record<string, any>[]> {
  const response = await t.app.inject({ url: '/api/tasks', headers: who.headers });
  expect(response.statusCode).toBe(200);
  return response.json();
}

function expectCreated(response: LightMyRequestResponse, replayed: boolean) {
  expect(response.statusCode, response.body).toBe(201);
  if (replayed) expect(response.headers['idempotent-replayed']).toBe('true');
  else expect(response.headers['idempotent-replayed']).toBeUndefined();
  expect(response.headers.etag).toMatch(/^"\d+"$/);
  expect(response.headers.location).toBe(`/api/tasks/${response.json().id}`);
  return response.json();
}

function expectProblem(response: LightMyRequestResponse, status: number, type?: string) {
  const body = expectProblemResponse(response, status, type);
  expect(response.headers['idempotent-replayed']).toBeUndefined();
  return body;
}

/** A connection as the database owner (migration role), which RLS does not filter here. */
async function ownerClient(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: inject('ownerUrl') });
  await client.connect();
  return client;
}

async function withOwner<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await ownerClient();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Becomes `authenticated` with sub's claims for the rest of the transaction, as the gateway does. */
async function becomeUser(client: pg.ClientBase, sub: string) {
  await client.query(`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)`, [
    JSON.stringify({ sub, role: 'authenticated' }),
  ]);
}

describe('replaying a POST', () => {
  it('returns the original 201 with Idempotent-Replayed: true and creates nothing', async () => {
    const alice = await user('idem-alice');
    const key = newKey();
    const payload = { title: 'Buy milk', description: 'two litres' };

    const first = await post(alice, payload, key);
    const original = expectCreated(first, false);
    expect(original).toMatchObject({ title: 'Buy milk', description: 'two litres', completed: false, user_id: alice.sub });

    for (let attempt = 0; attempt < 3; attempt++) {
      const again = await post(alice, payload, key);
      expect(expectCreated(again, true)).toEqual(original);
      expect(again.headers.location).toBe(first.headers.location);
      expect(again.headers.etag).toBe(first.headers.etag);
    }

    expect(await list(alice)).toEqual([original]);
  });

  it('treats the same JSON in another key order or with other white space as the same body', async () => {
    const alice = await user('idem-canonical');
    const key = newKey();
    const first = await t.app.inject({
      method: 'POST',
      url: '/api/tasks',
      headers: { ...alice.headers, 'content-type': 'application/json', 'idempotency-key': key },
      payload: '{"title":"same","completed":true}',
    });
    const original = expectCreated(first, false);
    const again = await t.app.inject({
      method: 'POST',
      url: '/api/tasks',
      headers: { ...alice.headers, 'content-type': 'application/json', 'idempotency-key': key },
      payload: '{ "completed": true,\n  "title": "same" }',
    });
    expect(expectCreated(again, true)).toEqual(original);
    expect(await list(alice)).toHaveLength(1);
  });

  it('still returns the original body after the task was changed', async () => {
    const alice = await user('idem-changed');
    const key = newKey();
    const payload = { title: 'original title' };
    const first = await post(alice, payload, key);
    const original = expectCreated(first, false);

    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/api/tasks/${original.id}`,
      headers: alice.headers,
      payload: { title: 'changed title', completed: true },
    });
    expect(patched.statusCode).toBe(200);

    const again = await post(alice, payload, key);
    expect(expectCreated(again, true)).toEqual(original);
    expect(again.headers.etag).toBe(first.headers.etag);

    const [current] = await list(alice);
    expect(current).toMatchObject({ id: original.id, title: 'changed title', completed: true });
  });

  it('still replays after the task was deleted, and recreates nothing', async () => {
    const alice = await user('idem-deleted');
    const key = newKey();
    const payload = { title: 'short-lived' };
    const original = expectCreated(await post(alice, payload, key), false);
    const deleted = await t.app.inject({ method: 'DELETE', url: `/api/tasks/${original.id}`, headers: alice.headers });
    expect(deleted.statusCode).toBe(204);

    expect(expectCreated(await post(alice, payload, key), true)).toEqual(original);
    expect(await list(alice)).toEqual([]);
  });

  it('without a key, the same body creates a new task each time', async () => {
    const alice = await user('idem-nokey');
    const a = expectCreated(await post(alice, { title: 'twice' }), false);
    const b = expectCreated(await post(alice, { title: 'twice' }), false);
    expect(a.id).not.toBe(b.id);
    expect(await list(alice)).toHaveLength(2);
  });
});

describe('a reused key with a different body', () => {
  it.each([
    ['another title', { title: 'something else' }],
    ['an added description', { title: 'the title', description: 'extra' }],
    ['another completed', { title: 'the title', completed: true }],
  ])('is 422 problem+json (%s) and creates nothing', async (_label, other) => {
    const alice = await user('idem-mismatch');
    const key = newKey();
    const original = expectCreated(await post(alice, { title: 'the title' }, key), false);

    const response = await post(alice, other, key);
    const problem = expectProblem(response, 422, '/problems/idempotency-key-reused');
    expect(JSON.stringify(problem)).not.toMatch(/PT422|api\.|request_hash|sha256/i);

    expect(await list(alice)).toEqual([original]);
    // The key still belongs to the original request.
    expect(expectCreated(await post(alice, { title: 'the title' }, key), true)).toEqual(original);
  });
});

describe('keys are per user', () => {
  it("another user's identical key and body create their own task", async () => {
    const alice = await user('idem-owner-a');
    const bob = await user('idem-owner-b');
    const key = newKey();
    const payload = { title: 'shared key' };

    const alices = expectCreated(await post(alice, payload, key), false);
    const bobs = expectCreated(await post(bob, payload, key), false);
    expect(bobs.id).not.toBe(alices.id);
    expect(bobs.user_id).toBe(bob.sub);

    // Bob may even use a different body with that key: it is his own key.
    const carols = await user('idem-owner-c');
    expectCreated(await post(carols, { title: 'different body' }, key), false);

    expect(expectCreated(await post(bob, payload, key), true)).toEqual(bobs);
    expect(expectCreated(await post(alice, payload, key), true)).toEqual(alices);
    expect(await list(alice)).toEqual([alices]);
    expect(await list(bob)).toEqual([bobs]);
  });
});

describe('the /api/{user_id}/tasks family', () => {
  it('honours Idempotency-Key too, with its own Location', async () => {
    const alice = await user('idem-family');
    const key = newKey();
    const payload = { title: 'via user path' };
    const url = `/api/${alice.sub}/tasks`;

    const first = await post(alice, payload, key, { url });
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const original = first.json();
    expect(first.headers.location).toBe(`/api/${alice.sub}/tasks/${original.id}`);

    const again = await post(alice, payload, key, { url });
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(original);
    expect(again.headers.location).toBe(first.headers.location);

    // The key is the user's, whichever family it came through.
    expect(expectCreated(await post(alice, payload, key), true)).toEqual(original);
    expect(await list(alice)).toEqual([original]);
  });

  it("refuses another user's path with 403 before looking at the key", async () => {
    const alice = await user('idem-family-a');
    const bob = await user('idem-family-b');
    const key = newKey();
    const response = await post(bob, { title: 'not mine' }, key, { url: `/api/${alice.sub}/tasks` });
    expectProblem(response, 403);
    // Nothing recorded for the key: Bob's own use of it is a first use.
    expectCreated(await post(bob, { title: 'not mine' }, key), false);
    expect(await list(alice)).toEqual([]);
  });
});

describe('concurrent requests with one key', () => {
  it('10 at once create exactly one task: 201 (same id) or 409 with Retry-After', async () => {
    const alice = await user('idem-race');
    const key = newKey();
    const payload = { title: 'exactly once' };

    const responses = await Promise.all(Array.from({ length: 10 }, () => post(alice, payload, key)));

    const created = responses.filter((response) => response.statusCode === 201);
    const busy = responses.filter((response) => response.statusCode !== 201);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(created.filter((response) => response.headers['idempotent-replayed'] === undefined)).toHaveLength(1);
    const ids = new Set(created.map((response) => response.json().id));
    expect(ids.size).toBe(1);
    for (const response of busy) {
      expectProblem(response, 409, '/problems/idempotency-key-in-use');
      expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
    }

    const tasks = await list(alice);
    expect(tasks).toHaveLength(1);
    expect(tasks[0].id).toBe([...ids][0]);

    // Once the first has finished, a retry is a replay.
    const retry = await post(alice, payload, key);
    expect(expectCreated(retry, true).id).toBe(tasks[0].id);
  });
});

describe('the key itself', () => {
  it.each([
    ['empty', ''],
    ['256 characters', 'k'.repeat(256)],
  ])('is 422 when %s, and nothing is created', async (_label, key) => {
    const alice = await user('idem-badkey');
    const response = await post(alice, { title: 'bad key' }, key);
    const problem = expectProblem(response, 422, '/problems/validation');
    expect(JSON.stringify(problem.errors ?? [])).toMatch(/idempotency-key/i);
    expect(await list(alice)).toEqual([]);
  });

  it('may be 1 or 255 characters', async () => {
    const alice = await user('idem-keylen');
    for (const key of ['k', 'k'.repeat(255)]) {
      const first = expectCreated(await post(alice, { title: `key of ${key.length}` }, key), false);
      expect(expectCreated(await post(alice, { title: `key of ${key.length}` }, key), true)).toEqual(first);
    }
    expect(await list(alice)).toHaveLength(2);
  });
});

describe('keys live in the database', () => {
  it('a second app with its own pool (another replica, or after a restart) replays the key', async () => {
    const alice = await user('idem-replica');
    const key = newKey();
    const payload = { title: 'survives restarts' };
    const first = await post(alice, payload, key);
    const original = expectCreated(first, false);

    const replica = await createTestApp();
    try {
      expect(replica.pool).not.toBe(t.pool);
      const again = await post(alice, payload, key, { app: replica });
      expect(expectCreated(again, true)).toEqual(original);
      expect(again.headers.location).toBe(first.headers.location);
      expectProblem(await post(alice, { title: 'other body' }, key, { app: replica }), 422, '/problems/idempotency-key-reused');
    } finally {
      await replica.close();
    }
    expect(await list(alice)).toEqual([original]);
  });

  it('an expired key creates a new task instead of replaying', async () => {
    const alice = await user('idem-expired');
    const key = newKey();
    const payload = { title: 'expires' };
    const original = expectCreated(await post(alice, payload, key), false);

    const expired = await withOwner((owner) =>
      owner.query(`update api.idempotency_keys set expires_at = now() - interval '1 second' where user_id = $1 and key = $2`, [
        alice.sub,
        key,
      ]),
    );
    expect(expired.rowCount).toBe(1);

    const fresh = expectCreated(await post(alice, payload, key), false);
    expect(fresh.id).not.toBe(original.id);
    const ids = (await list(alice)).map((task) => task.id).sort();
    expect(ids).toEqual([original.id, fresh.id].sort());

    // The key now belongs to the new request, for another 24 hours.
    expect(expectCreated(await post(alice, payload, key), true)).toEqual(fresh);
    const row = await withOwner((owner) =>
      owner.query(`select expires_at > now() + interval '23 hours' as fresh from api.idempotency_keys where user_id = $1 and key = $2`, [
        alice.sub,
        key,
      ]),
    );
    expect(row.rows).toEqual([{ fresh: true }]);
  });

  it('a key is kept for 24 hours', async () => {
    const alice = await user('idem-ttl');
    const key = newKey();
    expectCreated(await post(alice, { title: 'ttl' }, key), false);
    const { rows } = await withOwner((owner) =>
      owner.query(
        `select extract(epoch from expires_at - created_at)::int as seconds from api.idempotency_keys where user_id = $1 and key = $2`,
        [alice.sub, key],
      ),
    );
    expect(rows).toEqual([{ seconds: 24 * 3600 }]);
  });
});

describe('api.purge_expired_idempotency_keys() and row-level security', () => {
  it("deletes expired keys of every user, never an unexpired one, and nobody sees another user's keys", async () => {
    const alice = await user('purge-alice');
    const bob = await user('purge-bob');
    const carol = await user('purge-carol'); // calls the purge; owns nothing
    const keys = { aliceOld: newKey(), aliceNew: newKey(), bobOld: newKey(), bobNew: newKey() };
    expectCreated(await post(alice, { title: 'a old' }, keys.aliceOld), false);
    expectCreated(await post(alice, { title: 'a new' }, keys.aliceNew), false);
    expectCreated(await post(bob, { title: 'b old' }, keys.bobOld), false);
    expectCreated(await post(bob, { title: 'b new' }, keys.bobNew), false);
    const users = [alice.sub, bob.sub];

    await withOwner(async (db) => {
      await db.query('begin');
      try {
        // A key that expired a moment ago, and one a day ago.
        await db.query(`update api.idempotency_keys set expires_at = now() - interval '1 millisecond' where user_id = $1 and key = $2`, [
          alice.sub,
          keys.aliceOld,
        ]);
        await db.query(`update api.idempotency_keys set expires_at = now() - interval '1 day' where user_id = $1 and key = $2`, [
          bob.sub,
          keys.bobOld,
        ]);

        await becomeUser(db, carol.sub);
        // Carol cannot see, or delete, anybody else's keys, expired or not.
        const seen = await db.query('select user_id, key from api.idempotency_keys where user_id = any($1)', [users]);
        expect(seen.rows).toEqual([]);
        expect((await db.query('select count(*)::int as n from api.idempotency_keys')).rows[0].n).toBe(0);
        const removed = await db.query('delete from api.idempotency_keys where user_id = any($1)', [users]);
        expect(removed.rowCount).toBe(0);

        // But the purge deletes expired keys of any user.
        const purged = await db.query('select api.purge_expired_idempotency_keys() as n');
        expect(purged.rows[0].n).toBeGreaterThanOrEqual(2);

        // Each user sees only their own remaining key.
        await becomeUser(db, alice.sub);
        expect((await db.query('select user_id, key from api.idempotency_keys')).rows).toEqual([
          { user_id: alice.sub, key: keys.aliceNew },
        ]);
        await becomeUser(db, bob.sub);
        expect((await db.query('select user_id, key from api.idempotency_keys')).rows).toEqual([
          { user_id: bob.sub, key: keys.bobNew },
        ]);

        await db.query('reset role');
        const left = await db.query('select user_id, key from api.idempotency_keys where user_id = any($1) order by key', [users]);
        expect(left.rows).toEqual(
          [
            { user_id: alice.sub, key: keys.aliceNew },
            { user_id: bob.sub, key: keys.bobNew },
          ].sort((a, b) => a.key.localeCompare(b.key)),
        );
        await db.query('commit');
      } catch (error) {
        await db.query('rollback').catch(() => {});
        throw error;
      }
    });

    // After the purge, the purged keys are fresh; the others still replay.
    expectCreated(await post(alice, { title: 'a old' }, keys.aliceOld), false);
    expectCreated(await post(alice, { title: 'a new' }, keys.aliceNew), true);
    expectCreated(await post(bob, { title: 'b new' }, keys.bobNew), true);
  });

  it('authenticated cannot read, change or forge idempotency rows directly', async () => {
    const alice = await user('rls-alice');
    const mallory = await user('rls-mallory');
    const key = newKey();
    const original = expectCreated(await post(alice, { title: 'guarded' }, key), false);

    await withOwner(async (db) => {
      await db.query('begin');
      try {
        await becomeUser(db, mallory.sub);
        expect((await db.query('select * from api.idempotency_keys where key = $1', [key])).rows).toEqual([]);

        // No UPDATE privilege at all: a stored response cannot be rewritten.
        await db.query('savepoint s');
        await expect(db.query(`update api.idempotency_keys set response = '{}' where key = $1`, [key])).rejects.toMatchObject({
          code: '42501',
        });
        await db.query('rollback to savepoint s');

        // Inserting a row in Alice's name is refused (user_id is not insertable).
        await expect(
          db.query(`insert into api.idempotency_keys (user_id, key, request_hash, response) values ($1, $2, 'x', '{}')`, [
            alice.sub,
            key,
          ]),
        ).rejects.toMatchObject({ code: '42501' });
      } finally {
        await db.query('rollback');
      }
    });

    expect(expectCreated(await post(alice, { title: 'guarded' }, key), true)).toEqual(original);
  });
});

describe('a body is judged the same with or without an Idempotency-Key', () => {
  function postRaw(who: User, body: string, key?: string) {
    return t.app.inject({
      method: 'POST',
      url: '/api/tasks',
      headers: { ...who.headers, 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
      payload: body,
    });
  }

  // Valid JSON, but PostgreSQL text cannot hold U+0000.
  it.each([
    ['title', '{"title":"a\\u0000b"}'],
    ['description', '{"title":"a","description":"x\\u0000y"}'],
  ])('a NUL character in %s is 422 naming the field, never 500', async (field, body) => {
    const alice = await user('defect-nul');
    for (const key of [undefined, newKey()]) {
      const problem = expectProblem(await postRaw(alice, body, key), 422, '/problems/validation');
      expect(problem.errors).toContainEqual(expect.objectContaining({ field }));
    }
    expect(await list(alice)).toEqual([]);
  });

  // An unpaired surrogate has no UTF-8 form: refused, never silently replaced
  // by U+FFFD, and never with PostgreSQL's own message.
  it('an unpaired UTF-16 surrogate is 422 on both paths, and nothing is stored', async () => {
    const alice = await user('defect-surrogate');
    const body = '{"title":"a","description":"\\ud800"}';
    for (const key of [undefined, newKey()]) {
      const problem = expectProblem(await postRaw(alice, body, key), 422, '/problems/validation');
      expect(problem.errors).toContainEqual(expect.objectContaining({ field: 'description' }));
      expect(JSON.stringify(problem)).not.toMatch(/type json|input syntax/i);
    }
    expect(await list(alice)).toEqual([]);
  });

  it('a 422 for a bad Idempotency-Key does not blame the body', async () => {
    const alice = await user('defect-detail');
    const problem = expectProblem(await post(alice, { title: 'fine body' }, ''), 422, '/problems/validation');
    expect(problem.errors).toEqual([{ field: 'Idempotency-Key', reason: expect.any(String) }]);
    expect(problem.detail).not.toMatch(/body/i);
  });
});
