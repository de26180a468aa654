import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createTestApp, newUser, tokenFor, type TestApp } from './support/http.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

describe('a task round trip', () => {
  it('creates a task and lists it for its owner only', async () => {
    const alice = newUser('alice');
    const token = await tokenFor(alice);
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/tasks',
      headers: bearer(token),
      payload: { title: '  Buy milk ' },
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ title: 'Buy milk', user_id: alice, completed: false, description: null });
    expect(created.headers.location).toBe(`/api/tasks/${created.json().id}`);

    const listed = await t.app.inject({ url: '/api/tasks', headers: bearer(token) });
    expect(listed.json()).toEqual([created.json()]);

    const other = await t.app.inject({ url: '/api/tasks', headers: bearer(await tokenFor(newUser('bob'))) });
    expect(other.json()).toEqual([]);
  });
});
