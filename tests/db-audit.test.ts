// runAudit (src/db/audit.ts, which runs db/audit.sql) against the main test
// database, as the owner and as the gateway's own login role. Every way of
// failing it is in tests/db-audit-mutations.test.ts.
import { describe, expect, it } from 'vitest';
import { runAudit, runAuditOn } from '../src/db/audit.js';
import { appUrl, ownerUrl, rolledBack } from './support/database.js';

const CHECKS = ['roles', 'relation privileges', 'row-level security', 'policies', 'functions', 'schemas and database', 'default privileges'];

describe('runAudit', () => {
  it('passes on the migrated database, printing one table with a "pass" row per check', async () => {
    const { passed, report, rows, failures } = await runAudit(ownerUrl());
    expect(passed, report).toBe(true);
    expect(failures).toEqual([]);
    expect(rows.map((row) => [row.check, row.result])).toEqual(CHECKS.map((check) => [check, 'pass']));
    expect(report).toMatch(/^# \| check\s+\| result \| object \| role \| why$/m);
    expect(report).toMatch(/^1 \| roles\s+\| pass\s+\|/m);
    expect(report).toMatch(/RLS audit passed/);
  });

  it('passes when run as authenticator, which has no privileges on schema api', async () => {
    const { passed, report } = await runAudit(appUrl());
    expect(passed, report).toBe(true);
  });

  it("runs inside the caller's transaction and sees its uncommitted changes", async () => {
    await rolledBack(async (client) => {
      await client.query('create table api.audit_probe (id int primary key)');
      const { passed, failures } = await runAuditOn(client);
      expect(passed).toBe(false);
      expect(failures).toEqual([
        {
          check: 'row-level security',
          result: 'FAIL',
          object: 'api.audit_probe',
          role: '',
          why: 'row-level security disabled: whoever holds a privilege on it sees every row',
        },
      ]);
    });
  });
});
