// The typed client (client/): its generated types match the OpenAPI document
// the gateway serves, and it drives a real listening server end to end, with
// errors arriving as typed problem details.
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { createTaskClient, etagOf, nextPageCursor, type Problem, type Task, type TaskClient } from '../client/index.js';
import { renderClientTypes, SCHEMA_FILE } from '../scripts/generate-client-types.js';
import { createTestApp, newUser, tokenFor, type TestApp } from './support/http.js';

let t: TestApp;
let baseUrl: string;
beforeAll(async () => {
  t = await createTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${port}`;
});
afterAll(() => t.close());

describe('client/schema.d.ts', () => {
  it('is exactly what openapi-typescript makes of the served /openapi.json', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    const generated = await renderClientTypes(response.json());
    const committed = await readFile(SCHEMA_FILE, 'utf8').catch(() => '(missing)');
    expect(
      committed === generated,
      'client/schema.d.ts is out of date with the API\'s OpenAPI document: run "npm run client:generate" and commit the result',
    ).toBe(true);
  });
});

describe('createTaskClient against a listening server', () => {
  let user: string;
  let api: TaskClient;
  let task: Task;
  let etag: string;

  beforeAll(async () => {
    user = newUser('client');
    const token = await tokenFor(user);
    api = createTaskClient({ baseUrl: `${baseUrl}/`, getToken: async () => token });
  });

  it('lists no tasks for a new user', async () => {
    const { data, error, response } = await api.GET('/api/tasks');
    expect(error).toBeUndefined();
    expect(response.status).toBe(200);
    expect(data).toEqual([]);
  });

  it('creates a task: 201, the task, Location and ETag', async () => {
    const { data, error, response } = await api.POST('/api/tasks', { body: { title: '  Buy milk ', description: '2 litres' } });
    if (error) throw new Error(`unexpected problem ${error.type}`);
    expectTypeOf(data).toEqualTypeOf<Task>();
    expect(response.status).toBe(201);
    expect(data).toMatchObject({ title: 'Buy milk', description: '2 litres', completed: false, user_id: user });
    expect(response.headers.get('Location')).toBe(`/api/tasks/${data.id}`);
    task = data;
    etag = etagOf(response)!;
    expect(etag).toMatch(/^"\d+"$/);
  });

  it('lists it, under both route families', async () => {
    const own = await api.GET('/api/tasks');
    expect(own.data).toEqual([task]);
    const byUser = await api.GET('/api/{user_id}/tasks', { params: { path: { user_id: user } } });
    expect(byUser.data).toEqual([task]);
  });

  it('gets it by id', async () => {
    const { data, response } = await api.GET('/api/tasks/{id}', { params: { path: { id: task.id } } });
    expect(response.status).toBe(200);
    expect(data).toEqual(task);
    expect(etagOf(response)).toBe(etag);
  });

  it('patches it with If-Match', async () => {
    const { data, error, response } = await api.PATCH('/api/tasks/{id}', {
      params: { path: { id: task.id }, header: { 'if-match': etag } },
      body: { description: 'the barista one' },
    });
    if (error) throw new Error(`unexpected problem ${error.type}`);
    expect(data).toMatchObject({ id: task.id, title: 'Buy milk', description: 'the barista one' });
    expect(etagOf(response)).not.toBe(etag);
    etag = etagOf(response)!;
  });

  it('PUTs {title, description} and GET-edit-PUT-back, both typed, keeping completed', async () => {
    const put = await api.PUT('/api/tasks/{id}', { params: { path: { id: task.id } }, body: { title: 'Buy milk', description: 'the barista one' } });
    if (put.error) throw new Error(`unexpected problem ${put.error.detail}`);
    expect(put.data).toMatchObject({ title: 'Buy milk', description: 'the barista one', completed: false });
    const { data: fetched } = await api.GET('/api/tasks/{id}', { params: { path: { id: task.id } } });
    const back = await api.PUT('/api/tasks/{id}', { params: { path: { id: task.id } }, body: { ...fetched!, title: 'Buy milk' } });
    expect(back.response.status).toBe(200);
    expect(back.data).toEqual(fetched);
    etag = etagOf(back.response)!;
  });

  it('walks pages with nextPageCursor, filtered and ordered', async () => {
    const otherToken = await tokenFor(newUser('client-pages'));
    const other = createTaskClient({ baseUrl, getToken: () => otherToken });
    for (const title of ['c', 'A', 'b']) await other.POST('/api/tasks', { body: { title } });
    const titles: string[] = [];
    let cursor: string | undefined;
    do {
      const { data, response } = await other.GET('/api/tasks', {
        params: { query: { status: 'pending', sort: 'title', limit: 2, ...(cursor ? { cursor } : {}) } },
      });
      titles.push(...data!.map((item) => item.title));
      cursor = nextPageCursor(response);
    } while (cursor);
    expect(titles).toEqual(['A', 'b', 'c']);
  });

  it('toggles it without a body, and sets completed with one', async () => {
    const flipped = await api.PATCH('/api/tasks/{id}/complete', { params: { path: { id: task.id } } });
    expect(flipped.response.status).toBe(200);
    expect(flipped.data?.completed).toBe(true);
    const set = await api.PATCH('/api/{user_id}/tasks/{id}/complete', {
      params: { path: { user_id: user, id: task.id } },
      body: { completed: false },
    });
    expect(set.data?.completed).toBe(false);
    etag = etagOf(set.response)!;
  });

  it('a stale If-Match is a typed 412 problem and changes nothing', async () => {
    const { data, error, response } = await api.PUT('/api/tasks/{id}', {
      params: { path: { id: task.id }, header: { 'if-match': '"1"' } },
      body: { title: 'lost update', description: null, completed: true },
    });
    expect(data).toBeUndefined();
    expect(response.status).toBe(412);
    expect(error?.type).toBe('/problems/precondition-failed');
    const current = await api.GET('/api/tasks/{id}', { params: { path: { id: task.id } } });
    expect(current.data?.title).toBe('Buy milk');
  });

  it('sends typed header parameters: a repeated Idempotency-Key replays the first create', async () => {
    const init = { body: { title: 'once' }, params: { header: { 'idempotency-key': `client-${user}` } } };
    const first = await api.POST('/api/tasks', init);
    const again = await api.POST('/api/tasks', init);
    expect(first.response.status).toBe(201);
    expect(again.response.status).toBe(201);
    expect(again.response.headers.get('Idempotent-Replayed')).toBe('true');
    expect(again.data?.id).toBe(first.data?.id);
    await api.DELETE('/api/tasks/{id}', { params: { path: { id: first.data!.id } } });
  });

  it('an invalid body is a typed 422 problem naming the field', async () => {
    const { data, error, response } = await api.POST('/api/tasks', { body: { title: '   ' } });
    expectTypeOf(error).toEqualTypeOf<Problem | undefined>();
    expect(data).toBeUndefined();
    expect(response.status).toBe(422);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(error).toMatchObject({ type: '/problems/validation', status: 422, errors: [{ field: 'title', reason: 'must not be empty' }] });
  });

  it('deletes it: 204 and no data; afterwards it is a typed 404 problem', async () => {
    const deleted = await api.DELETE('/api/tasks/{id}', { params: { path: { id: task.id }, header: { 'if-match': etag } } });
    expect(deleted.response.status).toBe(204);
    expect(deleted.error).toBeUndefined();
    expect(deleted.data).toBeUndefined();

    const { data, error, response } = await api.GET('/api/tasks/{id}', { params: { path: { id: task.id } } });
    expect(data).toBeUndefined();
    expect(response.status).toBe(404);
    expect(error).toMatchObject({ type: '/problems/not-found', title: 'Not found', status: 404 });
    expect(typeof error?.detail).toBe('string');
  });

  it('sends no Authorization when getToken has none: a typed 401 problem', async () => {
    const anonymous = createTaskClient({ baseUrl, getToken: () => undefined });
    const { error, response } = await anonymous.GET('/api/tasks');
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
    expect(error?.type).toBe('/problems/unauthorized');
  });

  it("another user's token cannot read this user's path", async () => {
    const other = createTaskClient({ baseUrl, getToken: () => tokenFor(newUser('other')) });
    const { error, response } = await other.GET('/api/{user_id}/tasks', { params: { path: { user_id: user } } });
    expect(response.status).toBe(403);
    expect(error?.type).toBe('/problems/forbidden');
  });
});
