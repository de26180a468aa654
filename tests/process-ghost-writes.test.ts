// A write whose database traffic stalls is answered 503 "outcome unknown";
// when the stall clears and the held batch reaches PostgreSQL after all, it
// must not commit: nothing lands after its 503. Checked for every write
// route, through a proxy that holds the gateway's traffic and delivers it
// later, with a real gateway process.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newUser, tokenFor } from './support/http.js';
import { startProxiedServer } from './support/proxied-server.js';
import type { ServerProcess } from './support/server-process.js';
import type { TcpProxy } from './support/tcp-proxy.js';

let proxy: TcpProxy;
let server: ServerProcess;

beforeAll(async () => {
  ({ proxy, server } = await startProxiedServer({
    DB_CONNECT_TIMEOUT_MS: '1000',
    DB_CONNECT_RETRY_MS: '300',
    DB_STATEMENT_TIMEOUT_MS: '500',
  }));
});

afterAll(async () => {
  await server?.kill('SIGTERM');
  await proxy?.close();
});

type Call = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<{
  status: number;
  headers: Headers;
  body: any;
}>;

function clientFor(token: string): Call {
  return async (method, path, body, headers = {}) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
  };
}

interface Task {
  id: string;
  title: string;
  description: string | null;
  completed: boolean;
}

/** Each write route: the write to stall, given a fresh task and its ETag. */
const WRITES: Record<string, (task: Task) => [string, string, unknown?, Record<string, string>?]> = {
  create: () => ['POST', '/api/tasks', { title: 'ghost create' }],
  'create with Idempotency-Key': () => ['POST', '/api/tasks', { title: 'ghost idempotent' }, { 'idempotency-key': 'ghost-key' }],
  PUT: (task) => ['PUT', `/api/tasks/${task.id}`, { title: 'ghost put', description: 'ghost', completed: true }],
  PATCH: (task) => ['PATCH', `/api/tasks/${task.id}`, { title: 'ghost patch' }],
  DELETE: (task) => ['DELETE', `/api/tasks/${task.id}`],
  toggle: (task) => ['PATCH', `/api/tasks/${task.id}/complete`],
  'set completed': (task) => ['PATCH', `/api/tasks/${task.id}/complete`, { completed: true }],
};

describe('a write held in transit past its deadline', () => {
  for (const [route, write] of Object.entries(WRITES)) {
    it(`${route}: answered 503 outcome-unknown, and not applied when the held batch arrives`, async () => {
      const api = clientFor(await tokenFor(newUser('ghost')));
      // Also leaves an idle pooled connection that has measured the database's clock.
      const created = await api('POST', '/api/tasks', { title: 'original', description: null });
      expect(created.status).toBe(201);
      const before = await api('GET', '/api/tasks');

      proxy.hold();
      let answer: Awaited<ReturnType<Call>>;
      try {
        answer = await api(...write(created.body));
      } finally {
        await proxy.release();
      }

      expect(answer.status).toBe(503);
      // The held batch has now been delivered and handled: nothing changed.
      const after = await api('GET', '/api/tasks');
      expect(after.status).toBe(200);
      expect(after.body).toEqual(before.body);
      expect(after.headers.get('etag')).toBe(before.headers.get('etag'));
      expect(answer.headers.get('content-type')).toContain('application/problem+json');
      expect(answer.body).toMatchObject({ status: 503, type: '/problems/outcome-unknown' });
      expect(answer.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(answer.headers.get('x-request-id')).toBeTruthy();

      if (route === 'create with Idempotency-Key') {
        // The key was not stored either: the retry creates (not a replay).
        const retried = await api(...write(created.body));
        expect(retried.status).toBe(201);
        expect(retried.headers.get('idempotent-replayed')).toBeNull();
      }
    });
  }
});

describe('a write whose database session is terminated while it runs', () => {
  it('is answered 503 outcome-unknown (a FATAL may follow a COMMIT), never 2xx or 500', async () => {
    const api = clientFor(await tokenFor(newUser('terminated')));
    const created = await api('POST', '/api/tasks', { title: 'locked' });
    const owner = new pg.Client({ connectionString: inject('ownerUrl') });
    await owner.connect();
    try {
      // Hold the row so the toggle waits inside its transaction, then end its session.
      await owner.query('begin');
      await owner.query('select 1 from api.tasks where id = $1 for update', [created.body.id]);
      const toggle = api('PATCH', `/api/tasks/${created.body.id}/complete`);
      let terminated = 0;
      for (let i = 0; i < 50 && !terminated; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const { rows } = await owner.query(
          `select pg_terminate_backend(pid) as done from pg_stat_activity
            where wait_event_type = 'Lock' and pid <> pg_backend_pid() and query like '%toggle_task%'`,
        );
        terminated = rows.filter((row) => row.done).length;
      }
      expect(terminated).toBe(1);
      await owner.query('commit');
      const answer = await toggle;
      expect(answer.status).toBe(503);
      expect(answer.body.type).toBe('/problems/outcome-unknown');
      const after = await api('GET', `/api/tasks/${created.body.id}`);
      expect(after.body.completed).toBe(false);
    } finally {
      await owner.query('rollback').catch(() => {});
      await owner.end();
    }
  });
});
