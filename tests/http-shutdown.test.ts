// What a request meets while the server shuts down (src/http/drain.ts): in
// the grace period it is served, with Connection: close, and readiness is
// 503; once closing, it is refused as a problem with Retry-After and a
// request id, and nothing is done. The real process is in
// tests/process-lifecycle.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DrainState } from '../src/http/drain.js';
import { createTestApp, expectProblem, testUser, type TestApp, type TestUser } from './support/http.js';

const drain = new DrainState();
let t: TestApp;
let alice: TestUser;

beforeAll(async () => {
  t = await createTestApp({ drain });
  alice = await testUser('shutdown');
});

afterAll(async () => {
  await t.close();
});

describe('shutdown phases', () => {
  it('draining: readiness 503, requests served with Connection: close', async () => {
    drain.phase = 'draining';
    const ready = await t.app.inject({ method: 'GET', url: '/health/ready' });
    expectProblem(ready, 503, '/problems/unavailable');
    expect(ready.headers['retry-after']).toMatch(/^\d+$/);
    const created = await t.app.inject({ method: 'POST', url: '/api/tasks', headers: alice.headers, payload: { title: 'while draining' } });
    expect(created.statusCode).toBe(201);
    expect(created.headers.connection).toBe('close');
  });

  it('closing: refused as problem+json with Retry-After and X-Request-Id, and nothing is done', async () => {
    drain.phase = 'closing';
    const refused = await t.app.inject({
      method: 'POST',
      url: '/api/tasks',
      headers: { ...alice.headers, 'x-request-id': 'closing-1' },
      payload: { title: 'while closing' },
    });
    expectProblem(refused, 503, '/problems/unavailable');
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.headers['x-request-id']).toBe('closing-1');
    expect(refused.headers.connection).toBe('close');

    drain.phase = 'serving';
    const listed = await t.app.inject({ method: 'GET', url: '/api/tasks', headers: alice.headers });
    expect(listed.json().map((task: { title: string }) => task.title)).toEqual(['while draining']);
    expect(listed.headers.connection).not.toBe('close');
  });
});
