// The product contract (../shared/CONTRACT.md), end to end through the real
// Fastify app on a real PostgreSQL, for both route families:
//   /api/tasks…            the owner is the token's sub
//   /api/{user_id}/tasks…  {user_id} must be the token's sub
import type { LightMyRequestResponse } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PROBLEMS } from '../src/http/problem.js';
import { bearer, createTestApp, newUser, tokenFor, type TestApp } from './support/http.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** RFC 3339, UTC, with milliseconds: 2026-11-27T13:00:00.000Z */
const RFC3339_UTC_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** A strong entity tag (RFC 9110): a quoted string, no W/ prefix. */
const STRONG_ETAG = /^"[\x21\x23-\x7e]+"$/;
const TASK_FIELDS = ['completed', 'created_at', 'description', 'id', 'title', 'updated_at', 'user_id'];
const NO_SUCH_TASK = '00000000-0000-4000-8000-000000000000';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';

interface Family {
  name: string;
  /** The collection URL for a given user: what POST and list use. */
  collection(sub: string): string;
}

const families: Family[] = [
  { name: '/api/tasks', collection: () => '/api/tasks' },
  { name: '/api/{user_id}/tasks', collection: (sub) => `/api/${encodeURIComponent(sub)}/tasks` },
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function expectProblem(response: LightMyRequestResponse, status: number) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = response.json();
  expect(body).toMatchObject({
    type: expect.any(String),
    title: expect.any(String),
    status,
    detail: expect.any(String),
  });
  expect(body.type).not.toBe('');
  expect(body.title).not.toBe('');
  // Nothing but the RFC 9457 members (plus `errors`) reaches a client.
  for (const key of Object.keys(body)) expect(['type', 'title', 'status', 'detail', 'errors']).toContain(key);
  return body;
}

function expectTaskShape(task: Record<string, unknown>, sub: string) {
  expect(Object.keys(task).sort()).toEqual(TASK_FIELDS);
  expect(task.id).toMatch(UUID);
  expect(task.user_id).toBe(sub);
  expect(typeof task.title).toBe('string');
  expect(task.description === null || typeof task.description === 'string').toBe(true);
  expect(typeof task.completed).toBe('boolean');
  for (const field of ['created_at', 'updated_at'] as const) {
    expect(task[field]).toMatch(RFC3339_UTC_MS);
    // The instant is right (not shifted by a time zone): within a minute of now.
    expect(Math.abs(Date.parse(task[field] as string) - Date.now())).toBeLessThan(60_000);
  }
}

describe.each(families)('route family $name', (family) => {
  /** A fresh user with their token and this family's URLs. */
  async function user(label = 'user') {
    const sub = newUser(label);
    const headers = bearer(await tokenFor(sub));
    const collection = family.collection(sub);
    return {
      sub,
      headers,
      collection,
      url: (id: string, suffix = '') => `${collection}/${id}${suffix}`,
      call: (method: Method, url: string, payload?: unknown) =>
        t.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) }),
    };
  }
  type User = Awaited<ReturnType<typeof user>>;

  async function create(u: User, payload: Record<string, unknown> = { title: 'a task' }) {
    const response = await u.call('POST', u.collection, payload);
    expect(response.statusCode, response.body).toBe(201);
    return response;
  }

  async function list(u: User) {
    const response = await u.call('GET', u.collection);
    expect(response.statusCode).toBe(200);
    return response.json() as Record<string, unknown>[];
  }

  describe('POST /tasks', () => {
    it('answers 201 with the task, a Location in this family and a strong ETag', async () => {
      const u = await user();
      const response = await create(u, { title: '  Buy milk \t' });

      expect(response.headers['content-type']).toMatch(/^application\/json/);
      const task = response.json();
      expectTaskShape(task, u.sub);
      expect(task).toMatchObject({ title: 'Buy milk', description: null, completed: false });
      expect(task.created_at).toBe(task.updated_at);
      expect(response.headers.location).toBe(`${u.collection}/${task.id}`);
      expect(response.headers.etag).toMatch(STRONG_ETAG);

      // The Location answers with the same task and the same ETag.
      const fetched = await u.call('GET', response.headers.location as string);
      expect(fetched.statusCode).toBe(200);
      expect(fetched.json()).toEqual(task);
      expect(fetched.headers.etag).toBe(response.headers.etag);
    });

    it('stores the optional description and completed when given', async () => {
      const u = await user();
      const task = (await create(u, { title: 'Write report', description: 'Q3 numbers', completed: true })).json();
      expectTaskShape(task, u.sub);
      expect(task).toMatchObject({ title: 'Write report', description: 'Q3 numbers', completed: true });
      expect(await list(u)).toEqual([task]);
    });

    it('gives every task its own id', async () => {
      const u = await user();
      const first = (await create(u, { title: 'same' })).json();
      const second = (await create(u, { title: 'same' })).json();
      expect(first.id).not.toBe(second.id);
    });
  });

  describe('GET /tasks', () => {
    it('is 200 [] for a user who has no tasks', async () => {
      const u = await user();
      const response = await u.call('GET', u.collection);
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toMatch(/^application\/json/);
      expect(response.json()).toEqual([]);
    });

    it('lists the caller’s tasks newest first', async () => {
      const u = await user();
      const created = [];
      for (const title of ['first', 'second', 'third']) {
        created.push((await create(u, { title })).json());
        await sleep(5); // distinct created_at
      }
      const listed = await list(u);
      expect(listed).toEqual([...created].reverse());
      for (const task of listed) expectTaskShape(task, u.sub);
    });

    it('orders tasks created in the same instant by id, descending', async () => {
      const u = await user();
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push((await create(u, { title: `task ${i}` })).json().id);

      // Give them one created_at, as the database owner with triggers off (only
      // for this transaction), so that only the tie-break decides the order.
      const owner = new pg.Client({ connectionString: inject('ownerUrl') });
      await owner.connect();
      try {
        await owner.query('begin');
        await owner.query('set local session_replication_role = replica');
        await owner.query(
          "update api.tasks set created_at = '2026-01-01T00:00:00.000Z', updated_at = '2026-01-01T00:00:00.000Z' where id = any($1::uuid[])",
          [ids],
        );
        await owner.query('commit');
      } finally {
        await owner.end();
      }

      const listed = await list(u);
      expect(listed.map((task) => task.created_at)).toEqual(Array(4).fill('2026-01-01T00:00:00.000Z'));
      expect(listed.map((task) => task.id)).toEqual([...ids].sort().reverse());
    });
  });

  describe('GET /tasks/{id}', () => {
    it('is 200 with the task and its ETag', async () => {
      const u = await user();
      const created = await create(u, { title: 'Read', description: 'a book' });
      const response = await u.call('GET', u.url(created.json().id));
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toMatch(/^application\/json/);
      expect(response.json()).toEqual(created.json());
      expect(response.headers.etag).toMatch(STRONG_ETAG);
      expect(response.headers.etag).toBe(created.headers.etag);
    });
  });

  describe('PUT /tasks/{id}', () => {
    it('replaces every field and answers 200 with the task and a new ETag', async () => {
      const u = await user();
      const created = await create(u, { title: 'old', description: 'old text', completed: false });
      const before = created.json();
      await sleep(5);

      const response = await u.call('PUT', u.url(before.id), { title: '  new  ', description: null, completed: true });
      expect(response.statusCode, response.body).toBe(200);
      const task = response.json();
      expectTaskShape(task, u.sub);
      expect(task).toMatchObject({ id: before.id, title: 'new', description: null, completed: true });
      expect(task.created_at).toBe(before.created_at);
      expect(Date.parse(task.updated_at)).toBeGreaterThan(Date.parse(before.updated_at));
      expect(response.headers.etag).toMatch(STRONG_ETAG);
      expect(response.headers.etag).not.toBe(created.headers.etag);

      const fetched = await u.call('GET', u.url(before.id));
      expect(fetched.json()).toEqual(task);
      expect(fetched.headers.etag).toBe(response.headers.etag);

      // And back: a description string and completed false replace them again.
      const again = await u.call('PUT', u.url(before.id), { title: 'newer', description: 'text', completed: false });
      expect(again.statusCode).toBe(200);
      expect(again.json()).toMatchObject({ title: 'newer', description: 'text', completed: false });
    });
  });

  describe('PATCH /tasks/{id}', () => {
    it.each([
      [{ title: '  renamed ' }, { title: 'renamed', description: 'keep', completed: false }],
      [{ description: 'changed' }, { title: 'original', description: 'changed', completed: false }],
      [{ description: null }, { title: 'original', description: null, completed: false }],
      [{ completed: true }, { title: 'original', description: 'keep', completed: true }],
      [{ title: 'both', completed: true }, { title: 'both', description: 'keep', completed: true }],
      [{ title: 'all', description: null, completed: true }, { title: 'all', description: null, completed: true }],
      [{ description: 'd', completed: true }, { title: 'original', description: 'd', completed: true }],
    ])('with %j changes only those fields (200, new ETag)', async (changes, expected) => {
      const u = await user();
      const created = await create(u, { title: 'original', description: 'keep' });
      const before = created.json();

      const response = await u.call('PATCH', u.url(before.id), changes);
      expect(response.statusCode, response.body).toBe(200);
      const task = response.json();
      expectTaskShape(task, u.sub);
      expect(task).toEqual({ ...before, ...expected, updated_at: task.updated_at });
      expect(response.headers.etag).toMatch(STRONG_ETAG);
      expect(response.headers.etag).not.toBe(created.headers.etag);

      const fetched = await u.call('GET', u.url(before.id));
      expect(fetched.json()).toEqual(task);
      expect(fetched.headers.etag).toBe(response.headers.etag);
    });
  });

  describe('PATCH /tasks/{id}/complete', () => {
    it('with no body flips completed, and a second call flips it back', async () => {
      const u = await user();
      const created = await create(u);
      const id = created.json().id;

      const first = await u.call('PATCH', u.url(id, '/complete'));
      expect(first.statusCode, first.body).toBe(200);
      expectTaskShape(first.json(), u.sub);
      expect(first.json()).toMatchObject({ id, completed: true, title: 'a task' });
      expect(first.headers.etag).toMatch(STRONG_ETAG);

      const second = await u.call('PATCH', u.url(id, '/complete'));
      expect(second.statusCode).toBe(200);
      expect(second.json()).toMatchObject({ id, completed: false });
      expect(new Set([created.headers.etag, first.headers.etag, second.headers.etag]).size).toBe(3);

      expect((await u.call('GET', u.url(id))).json().completed).toBe(false);
    });

    it('with {"completed": true} sets it, and is idempotent', async () => {
      const u = await user();
      const id = (await create(u)).json().id;

      for (let i = 0; i < 2; i++) {
        const response = await u.call('PATCH', u.url(id, '/complete'), { completed: true });
        expect(response.statusCode, response.body).toBe(200);
        expect(response.json()).toMatchObject({ id, completed: true });
        expect(response.headers.etag).toMatch(STRONG_ETAG);
      }
      expect((await u.call('GET', u.url(id))).json().completed).toBe(true);
    });

    it('with {"completed": false} clears it, and is idempotent', async () => {
      const u = await user();
      const id = (await create(u, { title: 'done', completed: true })).json().id;

      for (let i = 0; i < 2; i++) {
        const response = await u.call('PATCH', u.url(id, '/complete'), { completed: false });
        expect(response.statusCode, response.body).toBe(200);
        expect(response.json()).toMatchObject({ id, completed: false });
      }
      expect((await u.call('GET', u.url(id))).json().completed).toBe(false);
    });

    it('with an empty body labelled application/json also flips', async () => {
      const u = await user();
      const id = (await create(u)).json().id;
      const response = await t.app.inject({
        method: 'PATCH',
        url: u.url(id, '/complete'),
        headers: { ...u.headers, 'content-type': 'application/json' },
        payload: '',
      });
      expect(response.statusCode, response.body).toBe(200);
      expect(response.json()).toMatchObject({ id, completed: true });
    });
  });

  describe('versions', () => {
    it('every write changes the ETag and advances updated_at; created_at stays', async () => {
      const u = await user();
      const created = await create(u, { title: 'versioned' });
      const first = created.json();
      const etags = [created.headers.etag];
      const updatedAts = [first.updated_at];

      const writes: [Method, string, unknown][] = [
        ['PUT', '', { title: 'put', description: 'x', completed: false }],
        ['PATCH', '', { title: 'patched' }],
        ['PATCH', '/complete', undefined],
        ['PATCH', '/complete', { completed: false }],
        ['PATCH', '', { description: null }],
      ];
      for (const [method, suffix, payload] of writes) {
        await sleep(5);
        const response = await u.call(method, u.url(first.id, suffix), payload);
        expect(response.statusCode, `${method} ${suffix}: ${response.body}`).toBe(200);
        expect(response.headers.etag).toMatch(STRONG_ETAG);
        expect(etags).not.toContain(response.headers.etag);
        etags.push(response.headers.etag);
        const task = response.json();
        expect(task.created_at).toBe(first.created_at);
        expect(Date.parse(task.updated_at)).toBeGreaterThan(Date.parse(updatedAts.at(-1)!));
        updatedAts.push(task.updated_at);
      }

      const fetched = await u.call('GET', u.url(first.id));
      expect(fetched.headers.etag).toBe(etags.at(-1));
      expect(fetched.json().updated_at).toBe(updatedAts.at(-1));
    });
  });

  describe('DELETE /tasks/{id}', () => {
    it('answers 204 with no body, after which every route on the id is 404', async () => {
      const u = await user();
      const id = (await create(u, { title: 'to delete' })).json().id;
      const keep = (await create(u, { title: 'to keep' })).json();

      const response = await u.call('DELETE', u.url(id));
      expect(response.statusCode).toBe(204);
      expect(response.body).toBe('');
      expect(response.headers['content-type']).toBeUndefined();

      const after: [Method, string, unknown][] = [
        ['GET', '', undefined],
        ['PUT', '', { title: 'x', description: null, completed: true }],
        ['PATCH', '', { title: 'x' }],
        ['DELETE', '', undefined],
        ['PATCH', '/complete', undefined],
        ['PATCH', '/complete', { completed: true }],
      ];
      for (const [method, suffix, payload] of after) {
        const gone = await u.call(method, u.url(id, suffix), payload);
        expectProblem(gone, 404);
        expect(gone.json().type).toBe(PROBLEMS.notFound.type);
      }

      expect(await list(u)).toEqual([keep]);
    });
  });

  describe('ids that name no task', () => {
    const routes: [Method, string, unknown][] = [
      ['GET', '', undefined],
      ['PUT', '', { title: 'x', description: null, completed: false }],
      ['PATCH', '', { title: 'x' }],
      ['DELETE', '', undefined],
      ['PATCH', '/complete', undefined],
      ['PATCH', '/complete', { completed: true }],
    ];

    it.each(routes)('%s {id}%s with a malformed id is 404 (body %j)', async (method, suffix, payload) => {
      const u = await user();
      await create(u);
      for (const id of ['not-a-uuid', '123', '00000000-0000-4000-8000-00000000000g']) {
        const response = await u.call(method, u.url(id, suffix), payload);
        expectProblem(response, 404);
        expect(response.json().type).toBe(PROBLEMS.notFound.type);
      }
      expect(await list(u)).toHaveLength(1);
    });

    it.each(routes)('%s {id}%s with a well-formed id of no task is 404 (body %j)', async (method, suffix, payload) => {
      const u = await user();
      const response = await u.call(method, u.url(NO_SUCH_TASK, suffix), payload);
      expectProblem(response, 404);
      expect(response.json().type).toBe(PROBLEMS.notFound.type);
    });
  });

  describe('methods a path does not serve', () => {
    const cases: [Method, string, string[]][] = [
      ['DELETE', '', ['GET', 'POST']],
      ['PUT', '', ['GET', 'POST']],
      ['PATCH', '', ['GET', 'POST']],
      ['POST', '/{id}', ['GET', 'PUT', 'PATCH', 'DELETE']],
      ['GET', '/{id}/complete', ['PATCH']],
      ['POST', '/{id}/complete', ['PATCH']],
      ['PUT', '/{id}/complete', ['PATCH']],
      ['DELETE', '/{id}/complete', ['PATCH']],
      // With no CORS configured nothing else answers OPTIONS.
      ['OPTIONS', '', ['GET', 'POST']],
      ['OPTIONS', '/{id}', ['GET', 'PUT', 'PATCH', 'DELETE']],
    ];

    it.each(cases)('%s /tasks%s is 405 with Allow: %j', async (method, path, served) => {
      const u = await user();
      const id = (await create(u)).json().id;
      const response = await u.call(method, u.collection + path.replace('{id}', id));
      expectProblem(response, 405);
      expect(response.json().type).toBe(PROBLEMS.methodNotAllowed.type);
      const allow = String(response.headers.allow ?? '')
        .split(',')
        .map((m) => m.trim().toUpperCase())
        .filter((m) => m && m !== 'HEAD' && m !== 'OPTIONS');
      expect(allow.sort()).toEqual([...served].sort());

      // Nothing happened to the task.
      const fetched = await u.call('GET', u.url(id));
      expect(fetched.statusCode).toBe(200);
      expect(fetched.json()).toMatchObject({ title: 'a task', completed: false });
    });
  });
});

describe('routes outside the task families', () => {
  it.each(['/nope', '/api', '/api/nothing/here/at/all', '/api/tasks/00000000-0000-4000-8000-000000000000/unknown'])(
    'an unknown path (%s) is 404 problem+json',
    async (url) => {
      const headers = bearer(await tokenFor(newUser()));
      const response = await t.app.inject({ method: 'GET', url, headers });
      expectProblem(response, 404);
      expect(response.json().type).toBe(PROBLEMS.notFound.type);
    },
  );

  it('GET /health/live is 200 without a token', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/health/live' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
  });

  it('GET /health/ready is 200 without a token while the database answers', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/health/ready' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
  });
});
