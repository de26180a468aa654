// ETag and If-Match, end to end through the real app and a real PostgreSQL:
// strong ETags that change on every write, If-Match checked inside the
// writing UPDATE (412 changes nothing), existence and ownership decided
// before the precondition (404/403 rather than 412), and concurrent writers
// that serialize on the row.
import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createTestApp, newUser, testUser, tokenFor, type TestApp, type TestUser } from './support/http.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t?.close();
});

const STRONG_ETAG = /^"\d+"$/;

type User = TestUser;
const user = testUser;

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

function call(
  who: User,
  method: Method,
  url: string,
  options: { payload?: unknown; ifMatch?: string; headers?: Record<string, string> } = {},
): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { ...who.headers, ...options.headers };
  if (options.ifMatch !== undefined) headers['if-match'] = options.ifMatch;
  return t.app.inject({
    method,
    url,
    headers,
    ...(options.payload === undefined ? {} : { payload: options.payload as Record<string, unknown> }),
  });
}

async function createTask(who: User, payload: Record<string, unknown> = { title: 'a task' }) {
  const response = await call(who, 'POST', '/api/tasks', { payload });
  expect(response.statusCode).toBe(201);
  return response;
}

function expectStrongEtag(response: LightMyRequestResponse): string {
  const etag = response.headers.etag;
  expect(typeof etag).toBe('string');
  expect(etag).toMatch(STRONG_ETAG);
  expect(String(etag).startsWith('W/')).toBe(false);
  return etag as string;
}

function expectProblem(response: LightMyRequestResponse, status: number, type?: string) {
  expect(response.statusCode).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = response.json();
  expect(body).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  if (type) expect(body.type).toBe(type);
  // No ETag on an error: there is no representation of the task in it.
  expect(response.headers.etag).toBeUndefined();
  return body;
}

/** GETs the task as `who` and returns the status, body and ETag. */
async function snapshot(who: User, id: string) {
  const response = await call(who, 'GET', `/api/tasks/${id}`);
  return { status: response.statusCode, body: response.json(), etag: response.headers.etag };
}

/** A write to one task, by name, for the table-driven tests. */
interface Write {
  name: string;
  method: Method;
  path: (id: string) => string;
  payload?: Record<string, unknown>;
  /** Status of a successful write. */
  ok: number;
}

const WRITES: Write[] = [
  { name: 'PUT', method: 'PUT', path: (id) => `/api/tasks/${id}`, payload: { title: 'replaced', description: 'new', completed: true }, ok: 200 },
  { name: 'PATCH', method: 'PATCH', path: (id) => `/api/tasks/${id}`, payload: { title: 'patched' }, ok: 200 },
  { name: 'PATCH /complete (toggle)', method: 'PATCH', path: (id) => `/api/tasks/${id}/complete`, ok: 200 },
  { name: 'PATCH /complete (set)', method: 'PATCH', path: (id) => `/api/tasks/${id}/complete`, payload: { completed: true }, ok: 200 },
  { name: 'DELETE', method: 'DELETE', path: (id) => `/api/tasks/${id}`, ok: 204 },
];

describe('ETag on every single-task response', () => {
  it.each(['/api/tasks', '/api/{user_id}/tasks'])('is strong and changes on every write (%s)', async (family) => {
    const alice = await user('etag-alice');
    const base = family === '/api/tasks' ? '/api/tasks' : `/api/${alice.sub}/tasks`;

    const created = await call(alice, 'POST', base, { payload: { title: 'first' } });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    const etags = [expectStrongEtag(created)];
    expect(etags[0]).toBe('"1"');

    const got = await call(alice, 'GET', `${base}/${id}`);
    expect(got.statusCode).toBe(200);
    expect(expectStrongEtag(got)).toBe(etags[0]);
    expect(got.json()).toEqual(created.json());

    const head = await t.app.inject({ method: 'HEAD', url: `${base}/${id}`, headers: alice.headers });
    expect(head.statusCode).toBe(200);
    expect(expectStrongEtag(head)).toBe(etags[0]);

    const writes: Array<[Method, string, Record<string, unknown> | undefined]> = [
      ['PUT', `${base}/${id}`, { title: 'second', description: 'd', completed: false }],
      ['PATCH', `${base}/${id}`, { description: null }],
      ['PATCH', `${base}/${id}/complete`, undefined],
      ['PATCH', `${base}/${id}/complete`, { completed: false }],
      ['PATCH', `${base}/${id}`, { title: 'third' }],
    ];
    for (const [method, url, payload] of writes) {
      const response = await call(alice, method, url, { payload });
      expect(response.statusCode, `${method} ${url}`).toBe(200);
      const etag = expectStrongEtag(response);
      expect(etags, `${method} ${url} must return a new ETag`).not.toContain(etag);
      etags.push(etag);

      const reread = await call(alice, 'GET', `${base}/${id}`);
      expect(expectStrongEtag(reread)).toBe(etag);
      expect(reread.json()).toEqual(response.json());
    }
    // The ETag is the write count: 1 on create, +1 per write.
    expect(etags).toEqual(['"1"', '"2"', '"3"', '"4"', '"5"', '"6"']);

    // A write that changes no value changes nothing: the same ETag.
    const same = await call(alice, 'PATCH', `${base}/${id}`, { payload: { title: 'third' } });
    expect(same.statusCode).toBe(200);
    expect(expectStrongEtag(same)).toBe('"6"');
  });

  it('is not part of the body (no version field leaks)', async () => {
    const alice = await user('etag-body');
    const created = await createTask(alice);
    expect(Object.keys(created.json()).sort()).toEqual(
      ['completed', 'created_at', 'description', 'id', 'title', 'updated_at', 'user_id'].sort(),
    );
  });
});

describe('If-Match with the current ETag', () => {
  it.each(WRITES)('lets $name through', async (write) => {
    const alice = await user('ifmatch-ok');
    const created = await createTask(alice);
    const id = created.json().id;

    const response = await call(alice, write.method, write.path(id), { payload: write.payload, ifMatch: created.headers.etag as string });
    expect(response.statusCode).toBe(write.ok);
    if (write.ok === 200) {
      expect(expectStrongEtag(response)).toBe('"2"');
      expect((await snapshot(alice, id)).etag).toBe('"2"');
    } else {
      expect((await snapshot(alice, id)).status).toBe(404);
    }
  });

  it('chains: each write with the ETag the previous one returned', async () => {
    const alice = await user('ifmatch-chain');
    const created = await createTask(alice);
    const id = created.json().id;
    let etag = created.headers.etag as string;
    for (const write of WRITES) {
      const response = await call(alice, write.method, write.path(id), { payload: write.payload, ifMatch: etag });
      expect(response.statusCode, write.name).toBe(write.ok);
      if (write.ok === 200) etag = expectStrongEtag(response);
    }
    expect((await snapshot(alice, id)).status).toBe(404);
  });

  it('matches when the current ETag is anywhere in a list', async () => {
    const alice = await user('ifmatch-list');
    const created = await createTask(alice);
    const id = created.json().id;

    const first = await call(alice, 'PATCH', `/api/tasks/${id}`, { payload: { title: 'one' }, ifMatch: `"999", ${created.headers.etag}` });
    expect(first.statusCode).toBe(200);
    expect(first.headers.etag).toBe('"2"');

    // No spaces, and the current one first.
    const second = await call(alice, 'PATCH', `/api/tasks/${id}/complete`, { ifMatch: `"2","999","1"` });
    expect(second.statusCode).toBe(200);
    expect(second.headers.etag).toBe('"3"');

    // A weak entry in the list does not spoil a strong one that matches.
    const third = await call(alice, 'DELETE', `/api/tasks/${id}`, { ifMatch: `W/"3", "3"` });
    expect(third.statusCode).toBe(204);
  });
});

describe('If-Match that does not match: 412 and nothing changes', () => {
  it.each(WRITES)('a stale ETag on $name', async (write) => {
    const alice = await user('ifmatch-stale');
    const created = await createTask(alice, { title: 'original', description: 'keep me' });
    const id = created.json().id;
    const stale = created.headers.etag as string;
    const moved = await call(alice, 'PATCH', `/api/tasks/${id}`, { payload: { description: 'moved on' } });
    expect(moved.statusCode).toBe(200);
    const before = await snapshot(alice, id);
    expect(before.etag).toBe('"2"');

    const response = await call(alice, write.method, write.path(id), { payload: write.payload, ifMatch: stale });
    const problem = expectProblem(response, 412, '/problems/precondition-failed');
    expect(JSON.stringify(problem)).not.toMatch(/PT412|api\.|raise_task|select /i);

    expect(await snapshot(alice, id)).toEqual(before);
  });

  it.each(WRITES)('a weak ETag never matches, even with the current version ($name)', async (write) => {
    const alice = await user('ifmatch-weak');
    const created = await createTask(alice);
    const id = created.json().id;
    const before = await snapshot(alice, id);
    expect(before.etag).toBe('"1"');

    for (const ifMatch of ['W/"1"', 'W/"1", W/"2"', 'w/"1"']) {
      const response = await call(alice, write.method, write.path(id), { payload: write.payload, ifMatch });
      expectProblem(response, 412, '/problems/precondition-failed');
    }
    expect(await snapshot(alice, id)).toEqual(before);
  });

  it('an unparseable or unknown ETag never matches', async () => {
    const alice = await user('ifmatch-garbage');
    const created = await createTask(alice);
    const id = created.json().id;
    const before = await snapshot(alice, id);

    for (const ifMatch of ['1', '"abc"', '"999"', '"0"', '"-1"', '"1.0"', `"${'9'.repeat(30)}"`]) {
      const response = await call(alice, 'PATCH', `/api/tasks/${id}`, { payload: { title: 'nope' }, ifMatch });
      expectProblem(response, 412, '/problems/precondition-failed');
    }
    expect(await snapshot(alice, id)).toEqual(before);
  });
});

describe('If-Match: * and missing tasks', () => {
  it.each(WRITES)('* matches an existing task on $name', async (write) => {
    const alice = await user('ifmatch-star');
    const created = await createTask(alice);
    const id = created.json().id;
    const response = await call(alice, write.method, write.path(id), { payload: write.payload, ifMatch: '*' });
    expect(response.statusCode).toBe(write.ok);
  });

  it.each(WRITES)('a deleted task is 404, not 412, on $name, whatever If-Match says', async (write) => {
    const alice = await user('ifmatch-deleted');
    const created = await createTask(alice);
    const id = created.json().id;
    expect((await call(alice, 'DELETE', `/api/tasks/${id}`)).statusCode).toBe(204);

    for (const ifMatch of ['*', '"1"', '"2"', 'W/"1"']) {
      const response = await call(alice, write.method, write.path(id), { payload: write.payload, ifMatch });
      expectProblem(response, 404, '/problems/not-found');
    }
  });

  it.each(WRITES)('a task that never existed is 404 on $name with If-Match', async (write) => {
    const alice = await user('ifmatch-missing');
    await createTask(alice); // the user has tasks, just not this one
    for (const id of [randomUUID(), 'not-a-uuid']) {
      for (const ifMatch of ['*', '"1"']) {
        const response = await call(alice, write.method, write.path(id), { payload: write.payload, ifMatch });
        expectProblem(response, 404, '/problems/not-found');
      }
    }
  });
});

describe("If-Match on another user's task", () => {
  it.each(WRITES)('is 403 (ownership before preconditions) on $name, and changes nothing', async (write) => {
    const alice = await user('ifmatch-owner');
    const mallory = await user('ifmatch-mallory');
    const created = await createTask(alice, { title: 'alice only' });
    const id = created.json().id;
    const before = await snapshot(alice, id);

    // Current, stale, wildcard and weak: all 403, none 412, none a success.
    for (const ifMatch of [before.etag as string, '"999"', '*', 'W/"1"']) {
      const response = await call(mallory, write.method, write.path(id), { payload: write.payload, ifMatch });
      expectProblem(response, 403, '/problems/forbidden');
    }
    expect(await snapshot(alice, id)).toEqual(before);
  });
});

describe('checks run in the contract order: validation, then existence and ownership, then If-Match', () => {
  const invalid: Array<[string, Method, (id: string) => string, Record<string, unknown>]> = [
    ['PUT without title', 'PUT', (id) => `/api/tasks/${id}`, { description: null, completed: true }],
    ['PATCH with a blank title', 'PATCH', (id) => `/api/tasks/${id}`, { title: '   ' }],
    ['PATCH with an unknown field', 'PATCH', (id) => `/api/tasks/${id}`, { version: 7 }],
    ['PATCH /complete with a string', 'PATCH', (id) => `/api/tasks/${id}/complete`, { completed: 'true' }],
  ];

  it.each(invalid)('%s with a stale If-Match is 422, not 412', async (_name, method, path, payload) => {
    const alice = await user('order-stale');
    const created = await createTask(alice);
    const id = created.json().id;
    await call(alice, 'PATCH', `/api/tasks/${id}/complete`); // now at "2"
    const before = await snapshot(alice, id);
    expectProblem(await call(alice, method, path(id), { payload, ifMatch: '"1"' }), 422, '/problems/validation');
    expect(await snapshot(alice, id)).toEqual(before);
  });

  it.each(invalid)("%s on another user's task, with If-Match, is 422 (validation comes first)", async (_name, method, path, payload) => {
    const alice = await user('order-owner');
    const mallory = await user('order-mallory');
    const id = (await createTask(alice)).json().id;
    expectProblem(await call(mallory, method, path(id), { payload, ifMatch: '"999"' }), 422, '/problems/validation');
  });
});

describe('concurrent writers', () => {
  it('50 concurrent toggles serialize: 50 flips, versions 2..51, each response consistent', async () => {
    const alice = await user('toggle-race');
    const initial = false;
    const created = await createTask(alice, { title: 'flip me', completed: initial });
    const id = created.json().id;
    expect(created.headers.etag).toBe('"1"');

    const N = 50;
    const responses = await Promise.all(
      Array.from({ length: N }, () => call(alice, 'PATCH', `/api/tasks/${id}/complete`)),
    );

    const results = responses.map((response) => {
      expect(response.statusCode, response.body).toBe(200);
      const etag = expectStrongEtag(response);
      const body = response.json();
      return { version: Number(etag.slice(1, -1)), completed: body.completed as boolean, updatedAt: body.updated_at as string };
    });

    // Every version from 2 to 51 exactly once: no flip lost, none doubled.
    expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i + 2));
    // Version v is the (v - 1)-th flip of `initial`.
    for (const { version, completed } of results) {
      expect(completed, `completed at version ${version}`).toBe((version - 1) % 2 === 1 ? !initial : initial);
    }
    // updated_at never goes backwards in write order.
    const inOrder = [...results].sort((a, b) => a.version - b.version);
    for (let i = 1; i < inOrder.length; i++) {
      expect(Date.parse(inOrder[i].updatedAt)).toBeGreaterThanOrEqual(Date.parse(inOrder[i - 1].updatedAt));
    }

    const final = await snapshot(alice, id);
    expect(final.status).toBe(200);
    expect(final.etag).toBe(`"${N + 1}"`);
    expect(final.body.completed).toBe(N % 2 === 0 ? initial : !initial);
  });

  it.each([
    ['with the current If-Match', '"1"'],
    ['without If-Match', undefined],
  ])('10 concurrent DELETEs %s: one 204, the rest 404 (deleted by an earlier request), never 412', async (_label, ifMatch) => {
    const alice = await user('delete-race');
    const id = (await createTask(alice)).json().id;
    const responses = await Promise.all(Array.from({ length: 10 }, () => call(alice, 'DELETE', `/api/tasks/${id}`, { ifMatch })));
    expect(responses.filter((response) => response.statusCode === 204)).toHaveLength(1);
    for (const response of responses.filter((r) => r.statusCode !== 204)) expectProblem(response, 404, '/problems/not-found');
    expect((await snapshot(alice, id)).status).toBe(404);
  });

  it('20 concurrent PATCHes with the same If-Match: exactly one wins, 19 are 412', async () => {
    const alice = await user('ifmatch-race');
    const created = await createTask(alice, { title: 'contended' });
    const id = created.json().id;
    const etag = created.headers.etag as string;

    const N = 20;
    const titles = Array.from({ length: N }, (_, i) => `writer ${i}`);
    const responses = await Promise.all(
      titles.map((title) => call(alice, 'PATCH', `/api/tasks/${id}`, { payload: { title }, ifMatch: etag })),
    );

    const winners = responses.filter((response) => response.statusCode === 200);
    const losers = responses.filter((response) => response.statusCode !== 200);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(N - 1);
    for (const loser of losers) expectProblem(loser, 412, '/problems/precondition-failed');

    const winner = winners[0];
    expect(winner.headers.etag).toBe('"2"');
    expect(titles).toContain(winner.json().title);

    const final = await snapshot(alice, id);
    expect(final.etag).toBe('"2"');
    expect(final.body).toEqual(winner.json());
  });
});
