// runAudit (src/db/audit.ts, which runs db/audit.sql) against the migrated
// test database. runAudit opens its own connection, so the throwaway tables
// that make it fail have to be committed; each is dropped again in a finally
// block, and the tests in this file run one after another.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runAudit } from '../src/db/audit.js';
import { connect, ownerUrl } from './support/database.js';

/** Creates a committed table api.audit_probe_<random> set up by `configure`, runs fn, drops the table. */
async function withProbeTable<T>(configure: string[], fn: (table: string) => Promise<T>): Promise<T> {
  const table = `audit_probe_${randomBytes(4).toString('hex')}`;
  const db = await connect();
  try {
    await db.query(`create table api.${table} (id int primary key)`);
    for (const statement of configure) await db.query(statement.replaceAll('%t', `api.${table}`));
    return await fn(table);
  } finally {
    await db.query(`drop table if exists api.${table}`);
    await db.end();
  }
}

/** Matches a report row that starts with these cells (formatTable pads cells and joins them with " | "). */
function reportRow(...cells: string[]): RegExp {
  return new RegExp(`^${cells.map((cell) => `${cell}\\s*`).join('\\|\\s')}`, 'm');
}

describe('runAudit', () => {
  it('passes on the migrated database', async () => {
    const { passed, report } = await runAudit(ownerUrl());
    expect(passed, report).toBe(true);
    expect(report).toMatch(/RLS audit passed/);
  });

  it('lists api.tasks with RLS enabled and forced, and every policy on it', async () => {
    const { report } = await runAudit(ownerUrl());
    expect(report).toMatch(reportRow('tasks', 'true', 'true'));
    for (const [policy, command, role] of [
      ['tasks_delete_own', 'DELETE', 'authenticated'],
      ['tasks_insert_own', 'INSERT', 'authenticated'],
      ['tasks_probe_existence', 'SELECT', 'task_probe'],
      ['tasks_select_own', 'SELECT', 'authenticated'],
      ['tasks_update_own', 'UPDATE', 'authenticated'],
    ]) {
      expect(report).toMatch(reportRow('tasks', policy, command, role));
    }
    const db = await connect();
    try {
      const { rows } = await db.query(`select count(*)::int as policies from pg_policies where schemaname = 'api' and tablename = 'tasks'`);
      expect(rows[0].policies).toBe(5);
    } finally {
      await db.end();
    }
  });

  it('lists the roles authenticator can reach, none of them superuser or bypassing RLS', async () => {
    const { report } = await runAudit(ownerUrl());
    for (const role of ['anon', 'authenticated', 'authenticator']) {
      expect(report).toMatch(reportRow(role, '(true|false)', 'false', 'false'));
    }
    expect(report).not.toMatch(/^task_probe\s*\|/m);
  });

  it('fails, naming the table, when a table in schema api has RLS disabled', async () => {
    await withProbeTable([], async (table) => {
      const { passed, report } = await runAudit(ownerUrl());
      expect(passed).toBe(false);
      expect(report).toContain(`table api.${table}: row-level security disabled`);
      expect(report).toMatch(reportRow(table, 'false', 'false'));
    });
  });

  it('fails, naming the table, when RLS is enabled but not forced', async () => {
    await withProbeTable(['alter table %t enable row level security'], async (table) => {
      const { passed, report } = await runAudit(ownerUrl());
      expect(passed).toBe(false);
      expect(report).toContain(`table api.${table}: row-level security enabled but not forced`);
    });
  });

  it('passes with the same kind of table once RLS is enabled and forced (control)', async () => {
    await withProbeTable(
      ['alter table %t enable row level security', 'alter table %t force row level security'],
      async (table) => {
        const { passed, report } = await runAudit(ownerUrl());
        expect(passed, report).toBe(true);
        expect(report).toMatch(reportRow(table, 'true', 'true'));
      },
    );
  });

  it('fails when a role authenticator can reach owns a table in schema api', async () => {
    await withProbeTable(
      [
        'alter table %t enable row level security',
        'alter table %t force row level security',
        'alter table %t owner to authenticated',
      ],
      async (table) => {
        const { passed, report } = await runAudit(ownerUrl());
        expect(passed).toBe(false);
        expect(report).toContain(`role authenticated, reachable from authenticator, owns table api.${table}`);
      },
    );
  });
});
