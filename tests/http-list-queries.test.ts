// GET /tasks as frontends use it: status filter, title order, opt-in keyset
// pages with an opaque cursor, and conditional GET (ETag, 304) on the list
// and on one task — on both route families. With TEST_REPLICAS=2 every
// request alternates between two gateway instances, so a cursor issued by
// one is opened by the other.
import type { LightMyRequestResponse } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bearer, createTestApp, expectProblem, newUser, tokenFor, type TestApp } from './support/http.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

interface Task {
  id: string;
  title: string;
  completed: boolean;
  created_at: string;
}

const families = [
  { name: '/api/tasks', collection: () => '/api/tasks' },
  { name: '/api/{user_id}/tasks', collection: (sub: string) => `/api/${encodeURIComponent(sub)}/tasks` },
];

async function user(collectionOf: (sub: string) => string = families[0].collection) {
  const sub = newUser('list');
  const headers = bearer(await tokenFor(sub));
  const collection = collectionOf(sub);
  return {
    sub,
    headers,
    collection,
    get: (query = '', extra: Record<string, string> = {}) =>
      t.app.inject({ method: 'GET', url: `${collection}${query}`, headers: { ...headers, ...extra } }),
    create: async (body: Record<string, unknown>) => {
      const response = await t.app.inject({ method: 'POST', url: collection, headers, payload: body });
      expect(response.statusCode, response.body).toBe(201);
      return response.json() as Task;
    },
    write: (method: 'PATCH' | 'PUT' | 'DELETE', id: string, suffix = '', payload?: object) =>
      t.app.inject({ method, url: `${collection}/${id}${suffix}`, headers, ...(payload ? { payload } : {}) }),
  };
}
type User = Awaited<ReturnType<typeof user>>;

const ids = (response: LightMyRequestResponse) => (response.json() as Task[]).map((task) => task.id);

/** Gives tasks the created_at values given, as the owner with triggers off, so order tests need no sleeping. */
async function setCreatedAt(moments: [id: string, createdAt: string][]) {
  const owner = new pg.Client({ connectionString: inject('ownerUrl') });
  await owner.connect();
  try {
    await owner.query('begin');
    await owner.query('set local session_replication_role = replica');
    for (const [id, createdAt] of moments) {
      await owner.query('update api.tasks set created_at = $2, updated_at = $2 where id = $1', [id, createdAt]);
    }
    await owner.query('commit');
  } finally {
    await owner.end();
  }
}

/** The next page's URL from a Link header, or undefined on the last page. */
function nextLink(response: LightMyRequestResponse): string | undefined {
  const link = response.headers.link as string | undefined;
  if (link === undefined) return undefined;
  const match = /^<([^>]+)>; rel="next"$/.exec(link);
  expect(match, link).not.toBeNull();
  return match![1];
}

describe.each(families)('filters and order on $name', (family) => {
  let u: User;
  let tasks: Record<string, Task>;
  beforeAll(async () => {
    u = await user(family.collection);
    tasks = {};
    // Created oldest first, completed as marked.
    const specs: [string, boolean][] = [
      ['banana', false],
      ['Apple', true],
      ['cherry', false],
      ['apple', false],
      ['Date', true],
    ];
    for (const [title, completed] of specs) tasks[title] = await u.create({ title, completed });
    await setCreatedAt(specs.map(([title], i) => [tasks[title].id, `2026-01-0${i + 1}T00:00:00.000Z`]));
  });

  it('with no parameters: every task, newest first', async () => {
    expect(ids(await u.get())).toEqual(['Date', 'apple', 'cherry', 'Apple', 'banana'].map((title) => tasks[title].id));
  });

  it.each([
    ['?status=all', ['Date', 'apple', 'cherry', 'Apple', 'banana']],
    ['?status=pending', ['apple', 'cherry', 'banana']],
    ['?status=completed', ['Date', 'Apple']],
    ['?sort=created', ['Date', 'apple', 'cherry', 'Apple', 'banana']],
    // Case-insensitive A→Z; equal titles newest first.
    ['?sort=title', ['apple', 'Apple', 'banana', 'cherry', 'Date']],
    ['?status=pending&sort=title', ['apple', 'banana', 'cherry']],
    ['?sort=title&status=completed', ['Apple', 'Date']],
    ['?status=pending&unknown=1&page=7', ['apple', 'cherry', 'banana']],
  ])('%s lists %j', async (query, expected) => {
    const response = await u.get(query);
    expect(response.statusCode, response.body).toBe(200);
    expect(ids(response)).toEqual(expected.map((title) => tasks[title].id));
  });

  it.each([
    ['?status=done', 'status', 'must be one of all, pending, completed'],
    ['?status=', 'status', 'must be one of all, pending, completed'],
    ['?sort=due', 'sort', 'must be one of created, title'],
    ['?status=all&status=pending', 'status', undefined],
    ['?limit=0', 'limit', 'must be at least 1'],
    ['?limit=1001', 'limit', 'must be at most 1000'],
    ['?limit=ten', 'limit', 'must be an integer'],
    ['?limit=1.5', 'limit', 'must be an integer'],
  ])('%s is 422 naming %s', async (query, field, reason) => {
    const problem = expectProblem(await u.get(query), 422, '/problems/validation');
    expect(new Set(problem.errors.map((error: { field: string }) => error.field))).toEqual(new Set([field]));
    if (reason !== undefined) {
      expect(problem.errors).toEqual([{ field, reason }]);
      expect(problem.detail).toBe(`${field}: ${reason}`);
    }
  });
});

describe.each(families)('pages on $name', (family) => {
  it.each(['', '&sort=title', '&status=pending', '&status=completed&sort=title'])(
    'limit=1000 returns the whole small list with no Link (query %s)',
    async (query) => {
      const u = await user(family.collection);
      await u.create({ title: 'one' });
      const response = await u.get(`?limit=1000${query}`);
      expect(response.statusCode).toBe(200);
      expect(response.headers.link).toBeUndefined();
    },
  );

  it.each([
    ['', 'created'],
    ['&sort=title', 'title'],
    ['&status=pending', 'created'],
    ['&status=pending&sort=title', 'title'],
  ])('walks every page of a 250-task list (query %s): nothing missing, nothing twice, even with creates in between', async (query) => {
    const u = await user(family.collection);
    // Titles with many ties, so title pages break inside a run of equal titles.
    const client = new pg.Client({ connectionString: inject('ownerUrl') });
    await client.connect();
    try {
      await client.query(
        `insert into api.tasks (user_id, title, completed)
         select $1, (array['Alpha', 'beta', 'alpha', 'Gamma', 'delta'])[1 + n % 5] || case when n % 7 = 0 then ' ' || n else '' end, n % 4 = 0
           from generate_series(1, 250) n`,
        [u.sub],
      );
    } finally {
      await client.end();
    }
    const whole = ids(await u.get(`?${query.slice(1)}`));

    const seen: string[] = [];
    let url: string | undefined = `${u.collection}?limit=37${query}`;
    let pages = 0;
    while (url) {
      const response = await t.app.inject({ method: 'GET', url, headers: u.headers });
      expect(response.statusCode, response.body).toBe(200);
      const page = ids(response);
      expect(page.length).toBeLessThanOrEqual(37);
      seen.push(...page);
      url = nextLink(response);
      if (url) {
        expect(page).toHaveLength(37);
        expect(url.startsWith(`${u.collection}?`)).toBe(true);
        // A new task between pages sorts first (newest; "Aaa" first by title):
        // it is not on a later page, and the walk still sees every earlier task once.
        await u.create({ title: 'Aaa new', completed: false });
      }
      pages += 1;
    }
    expect(pages).toBe(Math.ceil(whole.length / 37));
    expect(seen).toEqual(whole);
  });

  it('without limit the whole list comes back with no Link', async () => {
    const u = await user(family.collection);
    for (let i = 0; i < 3; i++) await u.create({ title: `t${i}` });
    const response = await u.get();
    expect(response.json()).toHaveLength(3);
    expect(response.headers.link).toBeUndefined();
  });

  it('a cursor changed, of another query, or of another user is 422 naming cursor', async () => {
    const u = await user(family.collection);
    const created = [];
    for (let i = 0; i < 3; i++) created.push(await u.create({ title: `secret title ${i}` }));
    const next = nextLink(await u.get('?limit=1'))!;
    const cursor = new URL(next, 'http://x').searchParams.get('cursor')!;
    // Opaque: no title, id or time in clear, encoded or not.
    for (const text of [cursor, Buffer.from(cursor, 'base64url').toString('latin1')]) {
      for (const secret of ['secret title', created[1].id, created[1].created_at.slice(0, 10)]) expect(text).not.toContain(secret);
    }

    const flipped = cursor.slice(0, 20) + (cursor[20] === 'A' ? 'B' : 'A') + cursor.slice(21);
    const other = await user(family.collection);
    for (const [who, query] of [
      [u, `?limit=1&cursor=${flipped}`],
      [u, `?limit=1&cursor=${cursor.slice(0, -2)}`],
      [u, '?limit=1&cursor=not-a-cursor'],
      [u, `?limit=1&sort=title&cursor=${cursor}`],
      [u, `?limit=1&status=pending&cursor=${cursor}`],
      [u, `?cursor=${cursor}`],
      [other, `?limit=1&cursor=${cursor}`],
    ] as const) {
      const problem = expectProblem(await who.get(query), 422, '/problems/validation');
      expect(problem.errors.map((error: { field: string }) => error.field)).toEqual(['cursor']);
    }
    // The genuine one works, with another page size too.
    expect((await u.get(`?limit=1&cursor=${cursor}`)).statusCode).toBe(200);
    expect(ids(await u.get(`?limit=5&cursor=${cursor}`))).toHaveLength(2);
  });
});

describe.each(families)('conditional GET on $name', (family) => {
  it('the list carries ETag, Cache-Control: private, no-cache and Vary: Authorization; If-None-Match answers 304 with no body', async () => {
    const u = await user(family.collection);
    await u.create({ title: 'one' });
    const first = await u.get();
    expect(first.headers.etag).toMatch(/^"[^"]+"$/);
    expect(first.headers['cache-control']).toBe('private, no-cache');
    expect(String(first.headers.vary)).toMatch(/\bAuthorization\b/i);

    const again = await u.get('', { 'if-none-match': first.headers.etag as string });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    expect(again.headers.etag).toBe(first.headers.etag);
    expect(again.headers['cache-control']).toBe('private, no-cache');

    // Weak form and a list of tags match as well.
    expect((await u.get('', { 'if-none-match': `"x", W/${first.headers.etag}` })).statusCode).toBe(304);
  });

  it('every kind of write changes the list ETag', async () => {
    const u = await user(family.collection);
    const task = await u.create({ title: 'one' });
    const etags = [(await u.get()).headers.etag];
    const writes = [
      () => u.create({ title: 'two' }),
      () => u.write('PATCH', task.id, '', { title: 'renamed' }),
      () => u.write('PUT', task.id, '', { title: 'put', description: 'd' }),
      () => u.write('PATCH', task.id, '/complete'),
      () => u.write('PATCH', task.id, '/complete', { completed: false }),
      () => u.write('DELETE', task.id),
    ];
    for (const write of writes) {
      const before = etags.at(-1)!;
      await write();
      const stale = await u.get('', { 'if-none-match': before as string });
      expect(stale.statusCode).toBe(200);
      expect(etags).not.toContain(stale.headers.etag);
      etags.push(stale.headers.etag);
    }
  });

  it('the ETag belongs to the query: another filter, order or page never gets a 304 for it', async () => {
    const u = await user(family.collection);
    await u.create({ title: 'one' });
    await u.create({ title: 'two' });
    const etag = (await u.get()).headers.etag as string;
    for (const query of ['?status=pending', '?sort=title', '?limit=1', '?status=completed']) {
      const response = await u.get(query, { 'if-none-match': etag });
      expect(response.statusCode, query).toBe(200);
      expect(response.headers.etag).not.toBe(etag);
      expect((await u.get(query, { 'if-none-match': response.headers.etag as string })).statusCode).toBe(304);
    }
  });

  it('two users sharing one ETag store never get a 304 for the other’s list', async () => {
    // Both users' lists at the same state: no tasks (version 0), then one write each.
    const alice = await user(family.collection);
    const bob = await user(family.collection);
    const store = new Map<string, string>(); // URL → ETag, as one browser keeps them

    const aliceEmpty = await alice.get();
    store.set('/api/tasks', aliceEmpty.headers.etag as string);
    const bobEmpty = await bob.get('', { 'if-none-match': store.get('/api/tasks')! });
    expect(bobEmpty.statusCode).toBe(200);
    expect(bobEmpty.headers.etag).not.toBe(aliceEmpty.headers.etag);

    await alice.create({ title: 'alice' });
    await bob.create({ title: 'bob' });
    const aliceList = await alice.get();
    const bobList = await bob.get('', { 'if-none-match': aliceList.headers.etag as string });
    expect(bobList.statusCode).toBe(200);
    expect(bobList.json().map((task: Task) => task.title)).toEqual(['bob']);
    const aliceAgain = await alice.get('', { 'if-none-match': bobList.headers.etag as string });
    expect(aliceAgain.statusCode).toBe(200);
    expect(aliceAgain.json().map((task: Task) => task.title)).toEqual(['alice']);
  });

  it('one task: ETag, Cache-Control and Vary; If-None-Match answers 304 until the task changes', async () => {
    const u = await user(family.collection);
    const task = await u.create({ title: 'one' });
    const url = `${u.collection}/${task.id}`;
    const first = await t.app.inject({ method: 'GET', url, headers: u.headers });
    expect(first.headers['cache-control']).toBe('private, no-cache');
    expect(String(first.headers.vary)).toMatch(/\bAuthorization\b/i);
    const etag = first.headers.etag as string;
    const notModified = await t.app.inject({ method: 'GET', url, headers: { ...u.headers, 'if-none-match': etag } });
    expect(notModified.statusCode).toBe(304);
    expect(notModified.body).toBe('');
    expect(notModified.headers.etag).toBe(etag);

    await u.write('PATCH', task.id, '', { title: 'changed' });
    const changed = await t.app.inject({ method: 'GET', url, headers: { ...u.headers, 'if-none-match': etag } });
    expect(changed.statusCode).toBe(200);
    expect(changed.json().title).toBe('changed');

    // Another user sending the same If-None-Match learns nothing: 403, not 304.
    const other = await user(family.collection);
    const foreign = await t.app.inject({
      method: 'GET',
      url: `${other.collection}/${task.id}`,
      headers: { ...other.headers, 'if-none-match': changed.headers.etag as string },
    });
    expectProblem(foreign, 403);
  });
});
