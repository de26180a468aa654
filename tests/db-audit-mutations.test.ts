// The audit cannot be fooled: every weakening in tests/support/audit-mutations.ts,
// applied to a correctly migrated database in a transaction that is rolled
// back, makes db/audit.sql fail, naming the offending object; the clean
// schema passes. Role changes are cluster-wide but transactional, so they too
// vanish with the rollback (or with the connection, if the test dies).
//
// Two databases of their own in the test server (inject('serverUrl'), the
// embedded PostgreSQL 17 or TEST_DATABASE_URL's), each freshly migrated:
//  - migrated by the server's superuser, as locally;
//  - migrated by a Neon-like owner (LOGIN, CREATEROLE, CREATEDB, not
//    SUPERUSER, not BYPASSRLS, owner of its database; on 16+ holding ADMIN
//    OPTION on the API roles as their creator would), as on Neon. There the
//    mutations and the audit run as that owner (SET ROLE in the superuser's
//    transaction); the few a non-superuser cannot make run as the superuser
//    first, in the same transaction.
// Both also check that psql -f db/audit.sql and npm run db:audit agree.
// Nothing here goes through the gateway's pooler, so the PgBouncer run of the
// suite (TEST_PGBOUNCER=1) skips this file rather than repeat it.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditSqlPath, runAuditOn, type AuditResult } from '../src/db/audit.js';
import { withDatabase, withUser } from '../src/db/database.js';
import { migrate, projectRoot } from '../src/db/migrate.js';
import { AUDIT_MUTATIONS, type AuditMutation } from './support/audit-mutations.js';
import { serverUrl, withClient } from './support/database.js';
import { psqlAvailable } from './support/psql.js';

const execFileAsync = promisify(execFile);
const API_ROLES = ['anon', 'authenticated', 'authenticator', 'idempotency_janitor', 'task_list_versioner', 'task_probe'];

interface Scenario {
  name: string;
  /** The superuser's URL for the scenario's database. */
  superuserUrl: string;
  /** The URL the owner logs in with (the same as superuserUrl when the owner is the superuser). */
  ownerUrl: string;
  /** Set when the owner is not the superuser: mutations and audit run as it. */
  ownerRole?: string;
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
}

function superuserScenario(): Scenario {
  const database = `task_api_audit_${randomBytes(4).toString('hex')}`;
  const scenario: Scenario = {
    name: "owner: the server's superuser",
    superuserUrl: '',
    ownerUrl: '',
    async setUp() {
      await withClient(serverUrl(), (admin) => admin.query(`create database ${database}`));
      scenario.superuserUrl = scenario.ownerUrl = withDatabase(serverUrl(), database);
      await migrate(scenario.ownerUrl);
    },
    async tearDown() {
      await withClient(serverUrl(), (admin) => admin.query(`drop database if exists ${database} with (force)`));
    },
  };
  return scenario;
}

function neonLikeScenario(): Scenario {
  const suffix = randomBytes(4).toString('hex');
  const database = `task_api_audit_neon_${suffix}`;
  const ownerRole = `task_api_audit_owner_${suffix}`;
  const password = randomBytes(18).toString('hex');
  const scenario: Scenario = {
    name: 'owner: a Neon-like non-superuser',
    superuserUrl: '',
    ownerUrl: '',
    ownerRole,
    async setUp() {
      await withClient(serverUrl(), async (admin) => {
        await admin.query(
          `create role ${ownerRole} login password '${password}' createrole createdb nosuperuser nobypassrls noreplication inherit`,
        );
        await admin.query(`create database ${database} owner ${ownerRole}`);
        const { rows } = await admin.query(`select current_setting('server_version_num')::int >= 160000 as pg16`);
        if (rows[0].pg16) {
          // What CREATE ROLE gives the roles' creator on 16+: ADMIN OPTION, neither INHERIT nor SET.
          for (const role of API_ROLES) {
            const { rowCount } = await admin.query('select from pg_roles where rolname = $1', [role]);
            if (rowCount) await admin.query(`grant ${role} to ${ownerRole} with admin option, inherit false, set false`);
          }
        }
      });
      scenario.superuserUrl = withDatabase(serverUrl(), database);
      scenario.ownerUrl = withUser(scenario.superuserUrl, ownerRole, password);
      await migrate(scenario.ownerUrl);
    },
    async tearDown() {
      await withClient(serverUrl(), async (admin) => {
        await admin.query(`drop database if exists ${database} with (force)`);
        await admin.query(`drop owned by ${ownerRole}`).catch(() => {});
        await admin.query(`drop role if exists ${ownerRole}`);
      });
    },
  };
  return scenario;
}

/** Applies the mutation (if any) in a transaction, runs the audit in it as the owner, rolls back. */
async function auditWith(scenario: Scenario, mutation?: AuditMutation): Promise<AuditResult> {
  return withClient(scenario.superuserUrl, async (client) => {
    await client.query('begin');
    try {
      const becomeOwner = async () => {
        if (scenario.ownerRole) await client.query(`set local role ${scenario.ownerRole}`);
      };
      const suffix = randomBytes(4).toString('hex');
      if (!mutation?.asSuperuser) await becomeOwner();
      for (const statement of mutation?.sql ?? []) {
        await client.query(statement.replaceAll('{suffix}', suffix));
      }
      await becomeOwner();
      return await runAuditOn(client);
    } finally {
      await client.query('rollback');
    }
  });
}

function describeOffence(mutation: AuditMutation): string {
  const { object, role, why } = mutation.expect;
  return `${object}${role ? ` (role ${role})` : ''}${why ? `: ${why}` : ''}`;
}

/** psql -f db/audit.sql and npm run db:audit against url: their exit statuses and output. */
async function psqlAndNpm(url: string) {
  const run = async (command: string, args: string[], env: NodeJS.ProcessEnv) => {
    try {
      const { stdout, stderr } = await execFileAsync(command, args, { cwd: projectRoot, env });
      return { status: 0, output: stdout + stderr };
    } catch (error) {
      const { code, stdout = '', stderr = '' } = error as { code?: number; stdout?: string; stderr?: string };
      return { status: code ?? -1, output: stdout + stderr };
    }
  };
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: url };
  delete env.DATABASE_OWNER_URL;
  const [psql, npm] = await Promise.all([
    run('psql', ['-X', url, '-f', auditSqlPath], env),
    run('npm', ['run', '--silent', 'db:audit'], env),
  ]);
  return { psql, npm };
}

if (!psqlAvailable) console.warn('tests/db-audit-mutations.test.ts: psql is not installed (apt-get install postgresql-client): the psql comparison is skipped');

const skipped = process.env.TEST_PGBOUNCER === '1';
if (skipped) console.warn('tests/db-audit-mutations.test.ts: skipped under TEST_PGBOUNCER=1 (it does not use the pooler)');

describe.skipIf(skipped).each([superuserScenario(), neonLikeScenario()])('db/audit.sql, $name', (scenario) => {
  beforeAll(() => scenario.setUp(), 120_000);
  afterAll(() => scenario.tearDown());

  it('passes on the clean schema', async () => {
    const { passed, report, failures } = await auditWith(scenario);
    expect(failures).toEqual([]);
    expect(passed, report).toBe(true);
    expect(report).toMatch(/RLS audit passed/);
  });

  it.each(AUDIT_MUTATIONS.map((mutation) => [mutation.name, mutation] as const))('fails on %s', async (_name, mutation) => {
    const { passed, report, failures } = await auditWith(scenario, mutation);
    expect(passed, report).toBe(false);
    const { object, role, why } = mutation.expect;
    const match = failures.find(
      (failure) =>
        (typeof object === 'string' ? failure.object === object : object.test(failure.object)) &&
        (!role || role.test(failure.role)) &&
        (!why || why.test(failure.why)),
    );
    expect(match, `expected an offence ${describeOffence(mutation)} in\n${report}`).toBeDefined();
    // The verdict's error repeats the offence, object first.
    expect(report).toContain(`] ${match!.object} (`);
  });

  it.skipIf(!psqlAvailable)('psql -f db/audit.sql and npm run db:audit both exit 0 on the clean schema, and 3 (the same table) once a table is leaked', async () => {
    const clean = await psqlAndNpm(scenario.ownerUrl);
    expect(clean.psql.status, clean.psql.output).toBe(0);
    expect(clean.npm.status, clean.npm.output).toBe(0);
    expect(clean.psql.output).toMatch(/RLS audit passed/);
    expect(clean.npm.output).toMatch(/RLS audit passed/);

    // Committed, so both clients' own connections see it; dropped again below.
    await withClient(scenario.ownerUrl, (owner) =>
      owner.query('create table public.audit_leak (id int); grant select on public.audit_leak to authenticated'),
    );
    try {
      const leaked = await psqlAndNpm(scenario.ownerUrl);
      expect(leaked.psql.status, leaked.psql.output).toBe(3);
      expect(leaked.npm.status, leaked.npm.output).toBe(3);
      for (const output of [leaked.psql.output, leaked.npm.output]) {
        expect(output).toMatch(/\|\s*FAIL\s*\|\s*public\.audit_leak\s*\|\s*authenticated\s*\|\s*SELECT on a table not on the allow-list/);
        expect(output).toMatch(/RLS audit failed/);
      }
    } finally {
      await withClient(scenario.ownerUrl, (owner) => owner.query('drop table public.audit_leak'));
    }
  }, 60_000);
});
