// The API as real frontend API-client modules call it, over a real HTTP
// server with Node's fetch: a fetch wrapper that labels every request
// application/json, an axios-style client, PUT with {title, description},
// the toggle with {} and with no body, and "GET a task, edit it, PUT it
// back". Then each rule those clients rely on, one by one: an empty body is
// no body, read-only fields sent back, errors whose detail can be shown, and
// writes that change nothing.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createTestApp, expectProblem, newUser, tokenFor, type TestApp } from './support/http.js';

let t: TestApp;
let base: string;
beforeAll(async () => {
  t = await createTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
});
afterAll(() => t.close());

interface Task {
  id: string;
  user_id: string;
  title: string;
  description: string | null;
  completed: boolean;
  created_at: string;
  updated_at: string;
}

/** The wrapper most of these frontends have: Content-Type on every method, as their specification says. */
function fetchWrapper(token: string, prefix: string) {
  return async function api<T>(path: string, options: { method?: string; body?: unknown } = {}) {
    const response = await fetch(`${base}${prefix}${path}`, {
      method: options.method ?? 'GET',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    if (!response.ok) {
      const problem = await response.json();
      throw new Error(`${response.status} ${problem.detail}`);
    }
    return { status: response.status, headers: response.headers, data: (response.status === 204 ? null : await response.json()) as T };
  };
}

/**
 * What an axios instance created with `headers: {'Content-Type': 'application/json'}`
 * sends: the header on every request, JSON bodies for data, an empty body
 * (Content-Length: 0) when a method that may have one is called without data.
 */
function axiosLike(token: string, prefix: string) {
  const request = async (method: string, path: string, data?: unknown) => {
    const body = data === undefined ? (['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) ? '' : undefined) : JSON.stringify(data);
    const response = await fetch(`${base}${prefix}${path}`, {
      method,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/plain, */*', Authorization: `Bearer ${token}` },
      body,
    });
    const text = await response.text();
    if (response.status >= 400) throw new Error(`Request failed with status code ${response.status}: ${text}`);
    return { status: response.status, data: text ? JSON.parse(text) : '' };
  };
  return {
    get: (path: string) => request('GET', path),
    post: (path: string, data?: unknown) => request('POST', path, data),
    put: (path: string, data?: unknown) => request('PUT', path, data),
    patch: (path: string, data?: unknown) => request('PATCH', path, data),
    delete: (path: string) => request('DELETE', path),
  };
}

const families = [
  { name: '/api/tasks', prefix: () => '/api' },
  { name: '/api/{user_id}/tasks', prefix: (sub: string) => `/api/${encodeURIComponent(sub)}` },
];

describe.each(families)('frontend clients on $name', (family) => {
  it('a fetch wrapper with Content-Type on every method runs the whole flow', async () => {
    const sub = newUser('fetch');
    const api = fetchWrapper(await tokenFor(sub), family.prefix(sub));

    expect((await api<Task[]>('/tasks')).data).toEqual([]);
    const created = (await api<Task>('/tasks', { method: 'POST', body: { title: 'Buy milk', description: '2 litres' } })).data;
    expect(created).toMatchObject({ title: 'Buy milk', description: '2 litres', completed: false, user_id: sub });

    // Toggle with {} and with no body: each flips.
    expect((await api<Task>(`/tasks/${created.id}/complete`, { method: 'PATCH', body: {} })).data.completed).toBe(true);
    expect((await api<Task>(`/tasks/${created.id}/complete`, { method: 'PATCH' })).data.completed).toBe(false);
    expect((await api<Task>(`/tasks/${created.id}/complete`, { method: 'PATCH', body: {} })).data.completed).toBe(true);

    // PUT {title, description}: completed keeps its value.
    const put = (await api<Task>(`/tasks/${created.id}`, { method: 'PUT', body: { title: 'Buy oat milk', description: 'the barista one' } })).data;
    expect(put).toMatchObject({ title: 'Buy oat milk', description: 'the barista one', completed: true });

    // GET, edit, PUT back the whole object.
    const fetched = (await api<Task>(`/tasks/${created.id}`)).data;
    const edited = (await api<Task>(`/tasks/${created.id}`, { method: 'PUT', body: { ...fetched, title: 'Buy soy milk' } })).data;
    expect(edited).toEqual({ ...fetched, title: 'Buy soy milk', updated_at: edited.updated_at });

    // PATCH the whole object back, too.
    const patched = (await api<Task>(`/tasks/${created.id}`, { method: 'PATCH', body: { ...edited, completed: false } })).data;
    expect(patched.completed).toBe(false);

    // DELETE with Content-Type and no body.
    expect((await api(`/tasks/${created.id}`, { method: 'DELETE' })).status).toBe(204);
    expect((await api<Task[]>('/tasks')).data).toEqual([]);
  });

  it('an axios-style client runs the whole flow', async () => {
    const sub = newUser('axios');
    const http = axiosLike(await tokenFor(sub), family.prefix(sub));

    const { data: task } = await http.post('/tasks', { title: 'Write report', user_id: sub });
    expect(task).toMatchObject({ title: 'Write report', user_id: sub, completed: false });
    expect((await http.patch(`/tasks/${task.id}/complete`)).data.completed).toBe(true);
    expect((await http.patch(`/tasks/${task.id}/complete`, {})).data.completed).toBe(false);
    expect((await http.patch(`/tasks/${task.id}/complete`, { completed: true })).data.completed).toBe(true);
    expect((await http.put(`/tasks/${task.id}`, { title: 'Write the report', description: null })).data).toMatchObject({
      title: 'Write the report',
      description: null,
      completed: true,
    });
    const { data: listed } = await http.get('/tasks?status=completed&sort=title');
    expect(listed.map((item: Task) => item.id)).toEqual([task.id]);
    expect((await http.delete(`/tasks/${task.id}`)).status).toBe(204);
    expect((await http.get('/tasks')).data).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// The rules, one by one, through inject.

async function user(label = 'user') {
  const sub = newUser(label);
  return { sub, headers: bearer(await tokenFor(sub)) };
}
type User = Awaited<ReturnType<typeof user>>;

function send(u: User, method: string, url: string, options: { json?: unknown; raw?: string; contentType?: string } = {}) {
  const payload = options.raw ?? (options.json === undefined ? undefined : JSON.stringify(options.json));
  const contentType = options.contentType ?? (payload === undefined ? undefined : 'application/json');
  return t.app.inject({
    method: method as 'GET',
    url,
    headers: { ...u.headers, ...(contentType ? { 'content-type': contentType } : {}) },
    ...(payload === undefined ? {} : { payload }),
  });
}

async function createTask(u: User, body: Record<string, unknown> = { title: 'original', description: 'as created' }) {
  const response = await send(u, 'POST', '/api/tasks', { json: body });
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as Task;
}

async function snapshot(u: User, id: string) {
  const response = await send(u, 'GET', `/api/tasks/${id}`);
  expect(response.statusCode).toBe(200);
  return { task: response.json() as Task, etag: response.headers.etag };
}

async function listOf(u: User) {
  const response = await send(u, 'GET', '/api/tasks');
  expect(response.statusCode).toBe(200);
  return response.json() as Task[];
}

describe('an empty body is no body, whatever its Content-Type says', () => {
  it.each(['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded'])(
    'DELETE with Content-Type %s and an empty body deletes (204)',
    async (contentType) => {
      const u = await user();
      const task = await createTask(u);
      const response = await send(u, 'DELETE', `/api/tasks/${task.id}`, { raw: '', contentType });
      expect(response.statusCode, response.body).toBe(204);
      expect(await listOf(u)).toEqual([]);
    },
  );

  it.each(['application/json', 'text/plain'])('the toggle with Content-Type %s and an empty body flips', async (contentType) => {
    const u = await user();
    const task = await createTask(u);
    const response = await send(u, 'PATCH', `/api/tasks/${task.id}/complete`, { raw: '', contentType });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json().completed).toBe(true);
  });

  it('GET with Content-Type and no body lists', async () => {
    const u = await user();
    await createTask(u);
    const response = await send(u, 'GET', '/api/tasks', { raw: '', contentType: 'application/json' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toHaveLength(1);
  });

  it.each([
    ['POST', ''],
    ['PUT', '/{id}'],
    ['PATCH', '/{id}'],
  ])('%s /tasks%s with an empty body is 422 naming the body as required, and changes nothing', async (method, suffix) => {
    const u = await user();
    const task = await createTask(u);
    const before = await snapshot(u, task.id);
    for (const contentType of ['application/json', 'text/plain', undefined]) {
      const response = await send(u, method, `/api/tasks${suffix.replace('{id}', task.id)}`, {
        ...(contentType ? { raw: '', contentType } : {}),
      });
      const problem = expectProblem(response, 422, '/problems/validation');
      expect(problem.errors).toEqual([{ field: 'body', reason: 'is required' }]);
      expect(problem.detail).toBe('body: is required');
    }
    expect(await snapshot(u, task.id)).toEqual(before);
    expect(await listOf(u)).toHaveLength(1);
  });

  it('authentication and the path owner still come first', async () => {
    const u = await user();
    const task = await createTask(u);
    const anonymous = await t.app.inject({ method: 'DELETE', url: `/api/tasks/${task.id}`, headers: { 'content-type': 'application/json' } });
    expectProblem(anonymous, 401);
    const other = await send(u, 'POST', `/api/${newUser('other')}/tasks`, { raw: '', contentType: 'application/json' });
    expectProblem(other, 403);
    expect(await listOf(u)).toHaveLength(1);
  });

  it('a non-empty body of another type is still 415', async () => {
    const u = await user();
    const task = await createTask(u);
    const response = await send(u, 'PATCH', `/api/tasks/${task.id}/complete`, { raw: 'x', contentType: 'text/plain' });
    expectProblem(response, 415, '/problems/unsupported-media-type');
    expect((await snapshot(u, task.id)).task.completed).toBe(false);
  });
});

describe('PUT that real clients can use', () => {
  it('{title, description} keeps completed; {title} keeps description and completed', async () => {
    const u = await user();
    const task = await createTask(u, { title: 'a', description: 'kept', completed: true });
    const first = await send(u, 'PUT', `/api/tasks/${task.id}`, { json: { title: 'b', description: 'changed' } });
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({ title: 'b', description: 'changed', completed: true });
    const second = await send(u, 'PUT', `/api/tasks/${task.id}`, { json: { title: 'c' } });
    expect(second.json()).toMatchObject({ title: 'c', description: 'changed', completed: true });
    expect((await snapshot(u, task.id)).task).toEqual(second.json());
  });

  it('an explicit null description clears it', async () => {
    const u = await user();
    const task = await createTask(u);
    const response = await send(u, 'PUT', `/api/tasks/${task.id}`, { json: { title: 'x', description: null } });
    expect(response.json()).toMatchObject({ title: 'x', description: null, completed: false });
  });

  it('title stays required', async () => {
    const u = await user();
    const task = await createTask(u);
    const response = await send(u, 'PUT', `/api/tasks/${task.id}`, { json: { description: 'no title' } });
    const problem = expectProblem(response, 422, '/problems/validation');
    expect(problem.errors).toEqual([{ field: 'title', reason: 'is required' }]);
    expect((await snapshot(u, task.id)).task).toEqual(task);
  });

  it('is idempotent and honours If-Match', async () => {
    const u = await user();
    const task = await createTask(u);
    const { etag } = await snapshot(u, task.id);
    const body = { title: 'same', description: 'twice' };
    const first = await t.app.inject({ method: 'PUT', url: `/api/tasks/${task.id}`, headers: { ...u.headers, 'if-match': etag! }, payload: body });
    expect(first.statusCode).toBe(200);
    const again = await t.app.inject({ method: 'PUT', url: `/api/tasks/${task.id}`, headers: u.headers, payload: body });
    expect(again.json()).toEqual(first.json());
    const stale = await t.app.inject({
      method: 'PUT',
      url: `/api/tasks/${task.id}`,
      headers: { ...u.headers, 'if-match': etag! },
      payload: { title: 'lost update' },
    });
    expectProblem(stale, 412);
    expect((await snapshot(u, task.id)).task.title).toBe('same');
  });
});

describe('read-only fields sent back', () => {
  it('PUT and PATCH accept id, user_id, created_at and updated_at when they agree, and change none of them', async () => {
    const u = await user();
    const task = await createTask(u);
    for (const [method, url, body] of [
      ['PUT', `/api/tasks/${task.id}`, { ...task, title: 'put back', created_at: '2000-01-01T00:00:00.000Z', updated_at: '2000-01-01T00:00:00.000Z' }],
      ['PATCH', `/api/tasks/${task.id}`, { ...task, title: 'put back', id: task.id.toUpperCase(), description: 'patched back' }],
      ['PATCH', `/api/tasks/${task.id}/complete`, { id: task.id, user_id: u.sub, completed: true }],
    ] as const) {
      const response = await send(u, method, url, { json: body });
      expect(response.statusCode, `${method} ${url}: ${response.body}`).toBe(200);
      const after = response.json();
      expect(after.id).toBe(task.id);
      expect(after.user_id).toBe(u.sub);
      expect(after.created_at).toBe(task.created_at);
      expect(after.updated_at).not.toBe('2000-01-01T00:00:00.000Z');
    }
    expect((await snapshot(u, task.id)).task).toMatchObject({ title: 'put back', description: 'patched back', completed: true });
  });

  it('POST accepts user_id equal to the caller', async () => {
    const u = await user();
    const task = await createTask(u, { title: 'mine', user_id: u.sub });
    expect(task.user_id).toBe(u.sub);
  });

  it.each([
    ['PUT', '', { title: 'x', id: '00000000-0000-4000-8000-000000000000' }, 'id'],
    ['PATCH', '', { title: 'x', id: '00000000-0000-4000-8000-000000000000' }, 'id'],
    ['PUT', '', { title: 'x', user_id: 'someone-else' }, 'user_id'],
    ['PATCH', '', { title: 'x', user_id: 'someone-else' }, 'user_id'],
    ['PATCH', '/complete', { completed: true, user_id: 'someone-else' }, 'user_id'],
  ])('%s {id}%s with %j is 422 naming %s, and changes nothing', async (method, suffix, body, field) => {
    const u = await user();
    const task = await createTask(u);
    const before = await snapshot(u, task.id);
    const problem = expectProblem(await send(u, method, `/api/tasks/${task.id}${suffix}`, { json: body }), 422, '/problems/validation');
    expect(problem.errors.map((error: { field: string }) => error.field)).toEqual([field]);
    expect(problem.detail).toMatch(new RegExp(`^${field}: `));
    expect(await snapshot(u, task.id)).toEqual(before);
  });

  it('POST with another user_id is 422 and creates nothing', async () => {
    const u = await user();
    const problem = expectProblem(await send(u, 'POST', '/api/tasks', { json: { title: 'x', user_id: 'someone-else' } }), 422);
    expect(problem.errors).toEqual([{ field: 'user_id', reason: expect.any(String) }]);
    expect(await listOf(u)).toEqual([]);
  });

  it('PATCH with nothing but read-only fields is 422', async () => {
    const u = await user();
    const task = await createTask(u);
    const problem = expectProblem(await send(u, 'PATCH', `/api/tasks/${task.id}`, { json: { id: task.id, user_id: u.sub } }), 422);
    expect(problem.errors[0].field).toBe('body');
  });

  it('a read-only field of the wrong type, or an unknown field, is still 422', async () => {
    const u = await user();
    const task = await createTask(u);
    expectProblem(await send(u, 'PUT', `/api/tasks/${task.id}`, { json: { title: 'x', created_at: 5 } }), 422);
    expectProblem(await send(u, 'PUT', `/api/tasks/${task.id}`, { json: { title: 'x', version: 5 } }), 422);
    expectProblem(await send(u, 'POST', '/api/tasks', { json: { title: 'x', id: task.id } }), 422);
  });
});

describe('errors people can show', () => {
  it('a 422 detail is one sentence naming every failing field and its reason; errors[] stays', async () => {
    const u = await user();
    const response = await send(u, 'POST', '/api/tasks', { json: { title: '', completed: 'yes' } });
    const problem = expectProblem(response, 422, '/problems/validation');
    expect(problem.detail).toBe('title: must not be empty; completed: must be true or false');
    expect(problem.errors).toEqual([
      { field: 'title', reason: 'must not be empty' },
      { field: 'completed', reason: 'must be true or false' },
    ]);
  });

  it('the same for a title that is only white space (checked after trimming)', async () => {
    const u = await user();
    const problem = expectProblem(await send(u, 'POST', '/api/tasks', { json: { title: '   ', priority: 1 } }), 422);
    expect(problem.detail.split('; ').sort()).toEqual(['priority: is not a field of this request', 'title: must not be empty']);
  });
});

describe('a write that changes nothing changes nothing', () => {
  it.each([
    ['PATCH', '/complete', { completed: false }],
    ['PATCH', '', { title: 'original' }],
    ['PATCH', '', { title: '  original  ', description: 'as created', completed: false }],
    ['PUT', '', { title: 'original', description: 'as created' }],
    ['PUT', '', { title: 'original' }],
  ])('%s {id}%s with %j keeps version, ETag, updated_at and the list ETag', async (method, suffix, body) => {
    const u = await user();
    const task = await createTask(u);
    const before = await snapshot(u, task.id);
    const listBefore = await send(u, 'GET', '/api/tasks');

    const response = await send(u, method, `/api/tasks/${task.id}${suffix}`, { json: body });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers.etag).toBe(before.etag);
    expect(response.json()).toEqual(before.task);
    expect(await snapshot(u, task.id)).toEqual(before);

    const listAfter = await send(u, 'GET', '/api/tasks');
    expect(listAfter.headers.etag).toBe(listBefore.headers.etag);

    // Another client's If-Match still holds.
    const guarded = await t.app.inject({
      method: 'PATCH',
      url: `/api/tasks/${task.id}`,
      headers: { ...u.headers, 'if-match': before.etag! },
      payload: { title: 'changed' },
    });
    expect(guarded.statusCode).toBe(200);
    expect(guarded.headers.etag).not.toBe(before.etag);
    expect((await send(u, 'GET', '/api/tasks')).headers.etag).not.toBe(listBefore.headers.etag);
  });

  it('repeating {"completed": true} keeps the ETag the first one gave', async () => {
    const u = await user();
    const task = await createTask(u);
    const created = await snapshot(u, task.id);
    const first = await send(u, 'PATCH', `/api/tasks/${task.id}/complete`, { json: { completed: true } });
    const second = await send(u, 'PATCH', `/api/tasks/${task.id}/complete`, { json: { completed: true } });
    expect(first.headers.etag).not.toBe(created.etag);
    expect(second.headers.etag).toBe(first.headers.etag);
    expect(second.json().updated_at).toBe(first.json().updated_at);
  });
});
