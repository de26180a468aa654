// What only a real process shows: SIGKILL loses no acknowledged write (on the
// embedded default, whose orphaned PostgreSQL the restart must take over),
// SIGTERM drains in-flight requests, and two replicas agree.
import { mkdtemp, rm } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { newUser, tokenFor } from './support/http.js';
import { startServerProcess, type ServerProcess } from './support/server-process.js';

const started: ServerProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((server) => server.kill('SIGKILL')));
});

async function start(env: Record<string, string>) {
  const server = await startServerProcess(env);
  started.push(server);
  return server;
}

function client(server: ServerProcess, token: string) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
  };
}

describe('SIGKILL during a write stream (embedded database)', () => {
  it('keeps every acknowledged task, intact, after a restart on the same data', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'task-api-crash-'));
    try {
      const env = { DATA_DIR: dataDir };
      const first = await start(env);
      const token = await tokenFor(newUser('crash'));
      const api = client(first, token);

      const acknowledged = new Map<string, Record<string, unknown>>();
      let attempted = 0;
      const writer = async (worker: number) => {
        for (let i = 0; i < 500; i++) {
          attempted++;
          try {
            const response = await api('POST', '/api/tasks', { title: `w${worker} #${i}`, description: `payload ${i}` });
            if (response.status === 201) acknowledged.set(response.body.id, response.body);
          } catch {
            return; // the process died mid-request
          }
        }
      };
      const writers = [0, 1, 2, 3].map(writer);
      // Kill mid-stream: once writes are being acknowledged (a loaded machine may take a while).
      while (acknowledged.size === 0 && attempted < 2000) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 700));
      await first.kill('SIGKILL');
      await Promise.all(writers);
      expect(acknowledged.size).toBeGreaterThan(0);

      const second = await start(env);
      const listed = await client(second, token)('GET', '/api/tasks');
      expect(listed.status).toBe(200);
      const stored = new Map(listed.body.map((task: { id: string }) => [task.id, task]));
      for (const [id, task] of acknowledged) expect(stored.get(id)).toEqual(task);
      // Nothing half-applied: every stored task is a whole, valid create.
      expect(stored.size).toBeLessThanOrEqual(attempted);
      for (const task of stored.values() as Iterable<Record<string, unknown>>) {
        expect(task.title).toMatch(/^w\d #\d+$/);
        expect(task.description).toMatch(/^payload \d+$/);
      }
      await second.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

/**
 * Holds task `id`'s row lock in a transaction on `owner` and starts a toggle
 * of it, which stays in flight until that transaction ends; waits for the
 * toggle to reach the database.
 */
async function toggleHeldByRowLock(owner: pg.Client, api: ReturnType<typeof client>, id: string) {
  await owner.query('begin');
  await owner.query('select 1 from api.tasks where id = $1 for update', [id]);
  const inFlight = api('PATCH', `/api/tasks/${id}/complete`);
  await new Promise((r) => setTimeout(r, 300));
  return { inFlight };
}

describe('SIGTERM', () => {
  it('finishes an in-flight request, refuses new connections, and exits 0', async () => {
    const server = await start({ DATABASE_URL: inject('appUrl'), DB_PREPARED_STATEMENTS: process.env.TEST_PREPARED_STATEMENTS ?? 'true' });
    const owner = new pg.Client({ connectionString: inject('ownerUrl') });
    await owner.connect();
    try {
      const token = await tokenFor(newUser('drain'));
      const api = client(server, token);
      const created = await api('POST', '/api/tasks', { title: 'held' });

      const { inFlight } = await toggleHeldByRowLock(owner, api, created.body.id);

      server.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      await expect(fetch(`${server.url}/health/live`, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();

      await owner.query('commit');
      const toggled = await inFlight;
      expect(toggled.status).toBe(200);
      expect(toggled.body.completed).toBe(true);
      expect(await server.exited).toBe(0);
    } finally {
      await owner.query('rollback').catch(() => {});
      await owner.end();
    }
  });
});

/** A raw HTTP/1.1 keep-alive connection: what each response said, and how the connection ended. */
function keepAliveConnection(url: string) {
  const { hostname, port } = new URL(url);
  const socket: Socket = connectTcp(Number(port), hostname);
  let buffer = '';
  let waiting: (() => void) | undefined;
  const ended = new Promise<'end' | 'error'>((resolve) => {
    socket.on('end', () => resolve('end'));
    socket.on('error', () => resolve('error'));
  });
  socket.on('data', (chunk) => {
    buffer += chunk;
    waiting?.();
  });
  return {
    ended,
    async get(path: string) {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: keep-alive\r\n\r\n`);
      const deadline = Date.now() + 5_000;
      // The health routes answer small JSON bodies with Content-Length.
      for (;;) {
        const head = buffer.indexOf('\r\n\r\n');
        const length = /content-length: (\d+)/i.exec(buffer)?.[1];
        if (head >= 0 && length && buffer.length >= head + 4 + Number(length)) {
          const response = buffer.slice(0, head + 4 + Number(length));
          buffer = buffer.slice(response.length);
          return { status: Number(response.split(' ')[1]), connectionClose: /\r\nconnection: close\r\n/i.test(response) };
        }
        if (Date.now() > deadline) throw new Error(`no response: ${buffer}`);
        await new Promise<void>((resolve) => {
          waiting = resolve;
          setTimeout(resolve, 50);
        });
      }
    },
    destroy: () => socket.destroy(),
  };
}

describe('SIGTERM drain with a grace period', () => {
  it('turns readiness 503 at once, keeps serving for the grace period with Connection: close, then stops accepting and finishes in-flight work', async () => {
    const server = await start({
      DATABASE_URL: inject('appUrl'),
      DB_PREPARED_STATEMENTS: process.env.TEST_PREPARED_STATEMENTS ?? 'true',
      SHUTDOWN_GRACE_MS: '1500',
    });
    const owner = new pg.Client({ connectionString: inject('ownerUrl') });
    await owner.connect();
    const kept = keepAliveConnection(server.url);
    try {
      const token = await tokenFor(newUser('grace'));
      const api = client(server, token);
      const created = await api('POST', '/api/tasks', { title: 'held' });
      expect(await kept.get('/health/live')).toEqual({ status: 200, connectionClose: false });

      const { inFlight } = await toggleHeldByRowLock(owner, api, created.body.id);

      server.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));

      // Readiness fails at once, as a problem with Retry-After and a request id.
      const ready = await fetch(`${server.url}/health/ready`, { signal: AbortSignal.timeout(2_000) });
      expect(ready.status).toBe(503);
      expect(ready.headers.get('content-type')).toContain('application/problem+json');
      expect(ready.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(ready.headers.get('x-request-id')).toBeTruthy();
      expect(await ready.json()).toMatchObject({ status: 503, type: '/problems/unavailable' });

      // Still serving, each keep-alive connection closed cleanly after its response.
      const duringGrace = await api('POST', '/api/tasks', { title: 'during the grace period' });
      expect(duringGrace.status).toBe(201);
      expect(duringGrace.headers.get('connection')).toBe('close');
      expect(await kept.get('/health/live')).toEqual({ status: 200, connectionClose: true });
      expect(await kept.ended).toBe('end');

      // After the grace period: no new connections; the in-flight toggle still finishes.
      await new Promise((r) => setTimeout(r, 1_600));
      await expect(fetch(`${server.url}/health/live`, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
      await owner.query('commit');
      const toggled = await inFlight;
      expect(toggled.status).toBe(200);
      expect(toggled.body.completed).toBe(true);
      expect(await server.exited).toBe(0);

      const listed = await client(await start({ DATABASE_URL: inject('appUrl') }), token)('GET', '/api/tasks');
      expect(listed.body.map((task: { title: string }) => task.title).sort()).toEqual(['during the grace period', 'held']);
    } finally {
      kept.destroy();
      await owner.query('rollback').catch(() => {});
      await owner.end();
    }
  });
});

describe('two replicas on one database', () => {
  it('share idempotency keys, ETags and toggles', async () => {
    const env = { DATABASE_URL: inject('appUrl'), DB_PREPARED_STATEMENTS: process.env.TEST_PREPARED_STATEMENTS ?? 'true' };
    const [a, b] = await Promise.all([start(env), start(env)]);
    const token = await tokenFor(newUser('replicas'));
    const onA = client(a, token);
    const onB = client(b, token);

    const created = await onA('POST', '/api/tasks', { title: 'shared' }, { 'idempotency-key': 'replica-key' });
    expect(created.status).toBe(201);
    const replayed = await onB('POST', '/api/tasks', { title: 'shared' }, { 'idempotency-key': 'replica-key' });
    expect(replayed.status).toBe(201);
    expect(replayed.headers.get('idempotent-replayed')).toBe('true');
    expect(replayed.body.id).toBe(created.body.id);

    const id = created.body.id;
    const etag = created.headers.get('etag')!;
    const changedOnB = await onB('PATCH', `/api/tasks/${id}`, { title: 'changed on B' }, { 'if-match': etag });
    expect(changedOnB.status).toBe(200);
    const staleOnA = await onA('PATCH', `/api/tasks/${id}`, { title: 'stale on A' }, { 'if-match': etag });
    expect(staleOnA.status).toBe(412);

    const toggles = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? onA : onB)('PATCH', `/api/tasks/${id}/complete`)),
    );
    expect(toggles.every((response) => response.status === 200)).toBe(true);
    const versions = toggles.map((response) => Number(response.headers.get('etag')!.replace(/"/g, ''))).sort((x, y) => x - y);
    expect(versions).toEqual(Array.from({ length: 20 }, (_, i) => i + 3));
    const final = await onA('GET', `/api/tasks/${id}`);
    expect(final.body).toMatchObject({ title: 'changed on B', completed: false });
    expect(final.headers.get('etag')).toBe('"22"');
  });
});
