// Named prepared statements behind a pooler that does not keep them: Debian's
// PgBouncer 1.18 in transaction mode lends each transaction whichever server
// connection is free, so a statement the gateway prepared on one is missing on
// the next (SQLSTATE 26000) or already there under the same name (42P05). The
// gateway keeps DB_PREPARED_STATEMENTS=true as its default, so it must notice
// that, re-run the batch (which PostgreSQL did not execute) with unnamed
// statements, and go on without names: never a 500.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRequestRunner } from '../src/db/request-transaction.js';
import { taskQueries } from '../src/db/task-queries.js';
import { rowsOf } from '../src/db/transaction-pipeline.js';
import { startPgBouncer, type PgBouncer } from './support/pgbouncer.js';
import { createTestApp, testUser, type TestApp } from './support/http.js';

describe('named prepared statements through a transaction-mode PgBouncer that does not keep them', () => {
  let pgbouncer: PgBouncer;
  let testApp: TestApp;

  beforeAll(async () => {
    pgbouncer = await startPgBouncer(inject('directAppUrl'));
    testApp = await createTestApp({ appUrl: pgbouncer.url, preparedStatements: true });
  });

  afterAll(async () => {
    await testApp?.close();
    await pgbouncer?.stop();
  });

  it('many concurrent requests from several users all succeed (no 500), and what was created is there once', async () => {
    const users = await Promise.all(Array.from({ length: 6 }, (_, i) => testUser(`prepared-${i}`)));
    const rounds = 8;
    const statuses: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const responses = await Promise.all(
        users.flatMap((user) => [
          testApp.app.inject({ method: 'POST', url: '/api/tasks', headers: user.headers, payload: { title: `round ${round}` } }),
          testApp.app.inject({ method: 'GET', url: '/api/tasks', headers: user.headers }),
          testApp.app.inject({ method: 'GET', url: '/api/tasks?status=pending', headers: user.headers }),
        ]),
      );
      for (const response of responses) {
        if (response.statusCode >= 500) throw new Error(`${response.statusCode}: ${response.body}`);
        statuses.push(response.statusCode);
      }
    }
    expect(statuses.every((status) => status === 200 || status === 201)).toBe(true);
    // Every acknowledged create is stored exactly once (a re-run batch was not executed twice).
    for (const user of users) {
      const list = await testApp.app.inject({ method: 'GET', url: '/api/tasks', headers: user.headers });
      expect(list.statusCode).toBe(200);
      const titles = (list.json() as { title: string }[]).map((task) => task.title).sort();
      expect(titles).toEqual(Array.from({ length: rounds }, (_, round) => `round ${round}`).sort());
    }
  });
});

describe('named prepared statements on a direct connection', () => {
  it('stay in use: the connection keeps them prepared across requests', async () => {
    const pool = new pg.Pool({ connectionString: inject('directAppUrl'), max: 1 });
    try {
      const runAsUser = createRequestRunner({ pool, preparedStatements: true, statementTimeoutMs: 5_000, connectRetryMs: 1_000, maxTasksPerUser: 100 });
      const claimsJson = JSON.stringify({ sub: 'prepared-direct', role: 'authenticated' });
      for (let i = 0; i < 3; i++) await runAsUser({ claimsJson }, 'read', taskQueries.list({ status: 'all', sort: 'created' }, []), rowsOf());
      const client = await pool.connect();
      try {
        const { rows } = await client.query('select name from pg_prepared_statements order by name');
        expect(rows.map((row) => row.name)).toEqual(['task_api_list_whole_created', 'task_api_set_role_and_claims']);
      } finally {
        client.release();
      }
    } finally {
      await pool.end();
    }
  });
});
