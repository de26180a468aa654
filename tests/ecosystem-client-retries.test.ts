// The typed client's default for writes (client/safe-retries.ts): every
// write's first attempt carries an Idempotency-Key or If-Match, so when its
// answer is lost ("outcome unknown") the retry cannot apply it twice. A real
// listening server; the transport in between loses answers on purpose.
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTaskClient } from '../client/index.js';
import { createTestApp, newUser, tokenFor, type TestApp } from './support/http.js';

let t: TestApp;
let baseUrl: string;
beforeAll(async () => {
  t = await createTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  baseUrl = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
});
afterAll(() => t.close());

function problem(type: string) {
  return new Response(JSON.stringify({ type, title: 'x', status: 503, detail: 'x' }), {
    status: 503,
    headers: { 'content-type': 'application/problem+json', 'retry-after': '0' },
  });
}

/** A transport that can lose the next answer of a method (the request still reaches the server) or refuse it unsent. */
function lossyTransport() {
  const sent: Request[] = [];
  let loseNext: { method: string; how: 'answer-lost' | 'not-sent' } | undefined;
  return {
    sent,
    lose(method: string, how: 'answer-lost' | 'not-sent') {
      loseNext = { method, how };
    },
    async fetch(request: Request) {
      sent.push(request.clone());
      if (loseNext?.method === request.method) {
        const { how } = loseNext;
        loseNext = undefined;
        if (how === 'not-sent') return problem('/problems/unavailable');
        await (await globalThis.fetch(request)).arrayBuffer();
        return problem('/problems/outcome-unknown');
      }
      return globalThis.fetch(request);
    },
  };
}

async function clientFor(retries?: false) {
  const token = await tokenFor(newUser('retries'));
  const transport = lossyTransport();
  const api = createTaskClient({ baseUrl, getToken: () => token, fetch: transport.fetch, retries });
  return { api, transport };
}

describe('safe retries in the typed client', () => {
  it('a create whose answer was lost is retried with the same Idempotency-Key: one task, replayed', async () => {
    const { api, transport } = await clientFor();
    transport.lose('POST', 'answer-lost');
    const { data, response } = await api.POST('/api/tasks', { body: { title: 'once' } });
    expect(response.status).toBe(201);
    expect(response.headers.get('Idempotent-Replayed')).toBe('true');
    const keys = transport.sent.filter((r) => r.method === 'POST').map((r) => r.headers.get('Idempotency-Key'));
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBeTruthy();
    expect(keys[1]).toBe(keys[0]);
    const { data: tasks } = await api.GET('/api/tasks');
    expect(tasks!.map((task) => task.id)).toEqual([data!.id]);
  });

  it('a toggle whose answer was lost is retried with If-Match and is not applied twice', async () => {
    const { api, transport } = await clientFor();
    const { data: task } = await api.POST('/api/tasks', { body: { title: 'flip once' } });
    transport.lose('PATCH', 'answer-lost');
    const { response } = await api.PATCH('/api/tasks/{id}/complete', { params: { path: { id: task!.id } } });
    // The first attempt landed; the retry's If-Match no longer matches.
    expect(response.status).toBe(412);
    const patches = transport.sent.filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => r.headers.get('If-Match'))).toEqual(['"1"', '"1"']);
    const { data: after } = await api.GET('/api/tasks/{id}', { params: { path: { id: task!.id } } });
    expect(after!.completed).toBe(true);
  });

  it('a write refused unsent ("unavailable") is retried and applied once', async () => {
    const { api, transport } = await clientFor();
    const { data: task } = await api.POST('/api/tasks', { body: { title: 'before' } });
    transport.lose('PUT', 'not-sent');
    const { data, response } = await api.PUT('/api/tasks/{id}', { params: { path: { id: task!.id } }, body: { title: 'after', description: null, completed: false } });
    expect(response.status).toBe(200);
    expect(data!.title).toBe('after');
    expect(response.headers.get('ETag')).toBe('"2"');
  });

  it('with retries: false, requests go out as given, once', async () => {
    const { api, transport } = await clientFor(false);
    transport.lose('POST', 'answer-lost');
    const { error, response } = await api.POST('/api/tasks', { body: { title: 'as given' } });
    expect(response.status).toBe(503);
    expect(error!.type).toBe('/problems/outcome-unknown');
    expect(transport.sent).toHaveLength(1);
    expect(transport.sent[0].headers.get('Idempotency-Key')).toBeNull();
  });
});
