// Task bodies are rendered by hand from PostgreSQL's text (src/db/task-json.ts)
// rather than by a schema serializer: every route's real responses are
// validated here against the Task schema that /openapi.json publishes, so the
// two cannot drift apart.
import { Ajv } from 'ajv';
import * as formats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { taskSchema } from '../src/http/schemas.js';
import { createTestApp, testUser, type TestApp } from './support/http.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

const ajv = new Ajv({ strict: true, allErrors: true });
// ajv-formats is CommonJS; its plugin is the module's default export.
const addFormats = formats.default as unknown as (instance: Ajv) => Ajv;
addFormats(ajv);
const validateTask = ajv.compile({ ...taskSchema, $id: undefined });
const RFC3339_UTC_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function expectTask(body: unknown) {
  expect(validateTask(body), JSON.stringify(validateTask.errors)).toBe(true);
  const task = body as { created_at: string; updated_at: string };
  expect(task.created_at).toMatch(RFC3339_UTC_MS);
  expect(task.updated_at).toMatch(RFC3339_UTC_MS);
}

describe('responses match the published Task schema', () => {
  it('on every route that returns tasks, with awkward text in every field', async () => {
    const alice = await testUser('shape "q" \\ é');
    const headers = alice.headers;
    const awkward = { title: 'quote " backslash \\ tab \t newline \n emoji 🎉', description: '</script>\u2028\u0007' };

    const created = await t.app.inject({ method: 'POST', url: '/api/tasks', headers, payload: awkward });
    expect(created.statusCode).toBe(201);
    expectTask(created.json());
    expect(created.json()).toMatchObject({ ...awkward, user_id: alice.sub });
    const id = created.json().id;

    const replayed = await t.app.inject({
      method: 'POST',
      url: '/api/tasks',
      headers: { ...headers, 'idempotency-key': 'shape-key' },
      payload: { title: 'keyed', description: null, completed: true },
    });
    expectTask(replayed.json());

    const responses = [
      await t.app.inject({ url: `/api/tasks/${id}`, headers }),
      await t.app.inject({ method: 'PUT', url: `/api/tasks/${id}`, headers, payload: { ...awkward, completed: true } }),
      await t.app.inject({ method: 'PATCH', url: `/api/tasks/${id}`, headers, payload: { description: null } }),
      await t.app.inject({ method: 'PATCH', url: `/api/tasks/${id}/complete`, headers }),
      await t.app.inject({ method: 'PATCH', url: `/api/tasks/${id}/complete`, headers, payload: { completed: true } }),
    ];
    for (const response of responses) {
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
      expectTask(response.json());
    }

    const listed = await t.app.inject({ url: '/api/tasks', headers });
    expect(listed.json()).toHaveLength(2);
    for (const task of listed.json()) expectTask(task);
  });
});
