// The database disappears under a running gateway process: it answers 503
// (never 500, never a hang), readiness flips, and it recovers by itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenFor, newUser } from './support/http.js';
import { startProxiedServer } from './support/proxied-server.js';
import type { ServerProcess } from './support/server-process.js';
import type { TcpProxy } from './support/tcp-proxy.js';

const REQUEST_BOUND_MS = 8_000;

let proxy: TcpProxy;
let server: ServerProcess;

beforeAll(async () => {
  ({ proxy, server } = await startProxiedServer({
    DB_CONNECT_TIMEOUT_MS: '1000',
    DB_CONNECT_RETRY_MS: '300',
    DB_STATEMENT_TIMEOUT_MS: '2000',
  }));
});

afterAll(async () => {
  await server?.kill('SIGTERM');
  await proxy?.close();
});

async function call(path: string, token: string, init: RequestInit = {}) {
  const started = Date.now();
  const response = await fetch(`${server.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
    signal: AbortSignal.timeout(REQUEST_BOUND_MS),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined, ms: Date.now() - started };
}

const ready = () => fetch(`${server.url}/health/ready`, { signal: AbortSignal.timeout(REQUEST_BOUND_MS) }).then((r) => r.status);

async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe('database outage under a stream of writes', () => {
  it('answers only 201 or 503, flips readiness, recovers, and keeps every acknowledged task', async () => {
    const user = newUser('outage');
    const token = await tokenFor(user);
    const acknowledged: string[] = [];
    const statuses = new Map<number, number>();
    let unavailable: Awaited<ReturnType<typeof call>> | undefined;

    let phase: 'before' | 'down' | 'after' = 'before';
    const writer = async (worker: number) => {
      for (let i = 0; i < 400 && phase !== 'after'; i++) {
        const response = await call('/api/tasks', token, {
          method: 'POST',
          body: JSON.stringify({ title: `task ${worker}-${i}` }),
        });
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        if (response.status === 201) acknowledged.push(response.body.id);
        if (response.status === 503) unavailable = response;
        expect(response.ms).toBeLessThan(REQUEST_BOUND_MS);
      }
    };

    const writers = [0, 1, 2, 3].map(writer);
    await new Promise((r) => setTimeout(r, 400));
    proxy.down();
    phase = 'down';
    expect(await eventually(async () => (await ready()) === 503)).toBe(true);
    await new Promise((r) => setTimeout(r, 800));
    proxy.up();
    expect(await eventually(async () => (await ready()) === 200)).toBe(true);
    phase = 'after';
    await Promise.all(writers);

    expect([...statuses.keys()].sort()).toEqual([201, 503]);
    expect(unavailable!.headers.get('content-type')).toContain('application/problem+json');
    expect(unavailable!.headers.get('retry-after')).toMatch(/^\d+$/);
    // Nothing was sent ("unavailable"), or a write was sent and lost ("outcome-unknown").
    expect(unavailable!.body).toMatchObject({ status: 503 });
    expect(['/problems/unavailable', '/problems/outcome-unknown']).toContain(unavailable!.body.type);

    // After recovery every request succeeds again.
    for (let i = 0; i < 5; i++) {
      const response = await call('/api/tasks', token, { method: 'POST', body: JSON.stringify({ title: `after ${i}` }) });
      expect(response.status).toBe(201);
      acknowledged.push(response.body.id);
    }

    const listed = await call('/api/tasks', token);
    const stored = new Set(listed.body.map((task: { id: string }) => task.id));
    for (const id of acknowledged) expect(stored.has(id)).toBe(true);
    expect(server.child.exitCode).toBeNull();
  });

  it('answers 503 within its timeouts when the database hangs, then recovers', async () => {
    const token = await tokenFor(newUser('hang'));
    proxy.blackhole();
    try {
      const response = await call('/api/tasks', token);
      expect(response.status).toBe(503);
      expect(response.ms).toBeLessThan(REQUEST_BOUND_MS);
      expect(await ready()).toBe(503);
    } finally {
      proxy.up();
    }
    expect(await eventually(async () => (await call('/api/tasks', token)).status === 200)).toBe(true);
  });
});
