// The Neon deployment of docs/deploy-neon.md, without Neon: the migrations and
// scripts/neon-setup.sql run as a role shaped like Neon's neondb_owner —
// LOGIN, CREATEROLE, CREATEDB, not SUPERUSER, not BYPASSRLS, owner of its
// database — and then the gateway's role must log in and be isolated per user.
//
// Two scenarios, because roles are cluster-wide:
//  - "shared server": a new database in the test server (inject('serverUrl')),
//    where anon, authenticated, authenticator, task_probe and
//    idempotency_janitor already exist (the main test database created them as
//    the superuser). The migrations find them and only re-assert them. On
//    Neon that is a second database of a branch whose owner created the roles;
//    on PostgreSQL 16+ a role's creator holds ADMIN OPTION on it, so the owner
//    here is granted exactly that (ADMIN, no INHERIT, no SET), which is what
//    CREATE ROLE records for its creator.
//  - "fresh cluster": a private cluster of the same major version (Debian's
//    binaries for the machine's server, the embedded ones for 17) with no API
//    roles at all, so the owner creates them itself, as on a new Neon project.
//    Always password (SCRAM) authentication, so the password is really checked.
// The shared scenario uses the one-command path (npm run db:migrate with
// AUTHENTICATOR_PASSWORD, then the setup script in check-only mode); the fresh
// one calls migrate() and lets the setup script set the password.
// The setup script is plain psql, so both need psql (postgresql-client); they
// are skipped, saying so, where it is missing.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAudit } from '../src/db/audit.js';
import { withDatabase, withUser } from '../src/db/database.js';
import { migrate, projectRoot } from '../src/db/migrate.js';
import { API_ROLES } from './support/api-roles.js';
import { appUrl, becomeUser, serverUrl, withClient } from './support/database.js';
import { psqlAvailable } from './support/psql.js';
import { binDirFor, startPrivateCluster, type PrivateCluster } from './support/private-cluster.js';
import { bearer, createTestApp, json, tokenFor } from './support/http.js';

const execFileAsync = promisify(execFile);

const SETUP_SQL = path.join(projectRoot, 'scripts', 'neon-setup.sql');

if (!psqlAvailable) console.warn('tests/ecosystem-neon.test.ts: psql is not installed (apt-get install postgresql-client): skipped');

const sql = (url: string, text: string, values: unknown[] = []) => withClient(url, (c) => c.query(text, values));

async function serverMajor(url: string): Promise<number> {
  const { rows } = await sql(url, `select current_setting('server_version_num')::int / 10000 as major`);
  return rows[0].major;
}

/** Runs scripts/neon-setup.sql with psql, as the docs say; resolves to its whole output. */
async function runSetupScript(ownerUrl: string, password?: string): Promise<string> {
  const args = [ownerUrl, '-X', '-v', 'ON_ERROR_STOP=1'];
  if (password !== undefined) args.push('-v', `authenticator_password=${password}`);
  args.push('-f', SETUP_SQL);
  const { stdout, stderr } = await execFileAsync('psql', args, { cwd: projectRoot, env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
  return `${stdout}\n${stderr}`;
}

/** `npm run db:migrate` exactly as deploy-neon.md runs it. */
async function npmDbMigrate(ownerUrl: string, authenticatorPassword: string): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_OWNER_URL: ownerUrl, AUTHENTICATOR_PASSWORD: authenticatorPassword };
  delete env.DATABASE_URL;
  try {
    const { stdout, stderr } = await execFileAsync('npm', ['run', '--silent', 'db:migrate'], { cwd: projectRoot, env });
    return `${stdout}\n${stderr}`;
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`npm run db:migrate failed:\n${stdout}\n${stderr}`);
  }
}

// ---------------------------------------------------------------------------

/** A role shaped like neondb_owner, and a database it owns, in the server at adminUrl. */
async function createNeonLikeOwner(adminUrl: string, roleName: string, password: string, databaseName: string) {
  await withClient(adminUrl, async (admin) => {
    await admin.query(
      `create role ${roleName} login password ${admin.escapeLiteral(password)} createrole createdb nosuperuser nobypassrls noreplication inherit`,
    );
    await admin.query(`create database ${databaseName} owner ${roleName}`);
  });
}

async function dropNeonLikeOwner(adminUrl: string, roleName: string, databaseName: string) {
  await withClient(adminUrl, async (admin) => {
    await admin.query(`drop database if exists ${databaseName} with (force)`);
    // On 16+ the role is the grantor of memberships it granted (anon and
    // authenticated to authenticator); DROP OWNED removes exactly those.
    await admin.query(`drop owned by ${roleName}`).catch(() => {});
    await admin.query(`drop role if exists ${roleName}`);
  });
}

interface Scenario {
  /** Superuser URL of the server the scenario runs in. */
  adminUrl: string;
  /** The owner's URL for its database. */
  ownerUrl: string;
  ownerRole: string;
  authenticatorPassword: string;
  /** Filled by the migration step. */
  authenticatorUrl: string;
  major: number;
}

/** The checks both scenarios make once the database is migrated and the password set. */
function isolationChecks(get: () => Scenario) {
  it('the RLS audit passes, run as the owner', async () => {
    const { passed, report } = await runAudit(get().ownerUrl);
    expect(passed, report).toBe(true);
    expect(report).toMatch(/RLS audit passed/);
    // The owner is not reachable from authenticator.
    expect(report).not.toMatch(new RegExp(`^${get().ownerRole}\\s*\\|\\s*(true|false)\\s*\\|`, 'm'));
  });

  it('authenticator has a SCRAM password and logs in with it, with no privileges of its own', async () => {
    const { adminUrl, authenticatorUrl } = get();
    const { rows } = await sql(adminUrl, `select rolpassword like 'SCRAM-SHA-256$%' as scram from pg_authid where rolname = 'authenticator'`);
    expect(rows[0].scram).toBe(true);
    await withClient(authenticatorUrl, async (db) => {
      const { rows: who } = await db.query('select current_user, session_user');
      expect(who[0]).toEqual({ current_user: 'authenticator', session_user: 'authenticator' });
      // NOINHERIT: without SET ROLE it can read nothing.
      await expect(db.query('select * from api.tasks')).rejects.toMatchObject({ code: '42501' });
    });
  });

  it("as authenticated with alice's claims, creates and reads her task; bob's claims see and change nothing", async () => {
    const { authenticatorUrl } = get();
    const alice = `alice-${randomBytes(3).toString('hex')}`;
    const bob = `bob-${randomBytes(3).toString('hex')}`;

    const task = await withClient(authenticatorUrl, async (db) => {
      await db.query('begin');
      await becomeUser(db, alice);
      const { rows } = await db.query(`select * from api.create_task('Buy milk', '2 litres')`);
      const { rows: mine } = await db.query('select id, user_id, title from api.tasks');
      expect(mine).toEqual([{ id: rows[0].id, user_id: alice, title: 'Buy milk' }]);
      await db.query('commit');
      return rows[0] as { id: string };
    });

    await withClient(authenticatorUrl, async (db) => {
      await db.query('begin');
      await becomeUser(db, bob);
      expect((await db.query('select * from api.tasks')).rows).toEqual([]);
      expect((await db.query('select * from api.tasks where id = $1', [task.id])).rows).toEqual([]);
      expect((await db.query(`update api.tasks set title = 'mine now' where id = $1`, [task.id])).rowCount).toBe(0);
      expect((await db.query('delete from api.tasks where id = $1', [task.id])).rowCount).toBe(0);
      await expect(db.query('select * from api.get_task($1)', [task.id])).rejects.toMatchObject({ code: '42501' });
      await db.query('rollback');

      // No claims at all: nothing. anon: not even the schema.
      await db.query('begin');
      await becomeUser(db, null);
      expect((await db.query('select * from api.tasks')).rows).toEqual([]);
      await db.query('rollback');
      await db.query('begin');
      await becomeUser(db, alice, 'anon');
      await expect(db.query('select * from api.tasks')).rejects.toMatchObject({ code: '42501' });
      await db.query('rollback');
    });

    await withClient(authenticatorUrl, async (db) => {
      await db.query('begin');
      await becomeUser(db, alice);
      const { rows } = await db.query('select title, description from api.tasks where id = $1', [task.id]);
      expect(rows).toEqual([{ title: 'Buy milk', description: '2 litres' }]);
      await db.query('rollback');
    });
  });

  it('the real gateway on this database: 201 for alice, 403 and [] for bob', async () => {
    const testApp = await createTestApp({ appUrl: get().authenticatorUrl });
    try {
      const alice = await tokenFor(`alice-${randomBytes(3).toString('hex')}`);
      const bob = await tokenFor(`bob-${randomBytes(3).toString('hex')}`);
      const created = await testApp.app.inject({ method: 'POST', url: '/api/tasks', headers: bearer(alice), payload: { title: 'via the gateway' } });
      expect(created.statusCode, created.body).toBe(201);
      const id = json(created).id;
      expect((await testApp.app.inject({ method: 'GET', url: `/api/tasks/${id}`, headers: bearer(alice) })).statusCode).toBe(200);
      expect((await testApp.app.inject({ method: 'GET', url: `/api/tasks/${id}`, headers: bearer(bob) })).statusCode).toBe(403);
      const list = await testApp.app.inject({ method: 'GET', url: '/api/tasks', headers: bearer(bob) });
      expect(list.statusCode).toBe(200);
      expect(list.json()).toEqual([]);
    } finally {
      await testApp.close();
    }
  });
}

describe.skipIf(!psqlAvailable)('Neon-like owner, shared server: a new database where the API roles already exist', () => {
  const suffix = randomBytes(4).toString('hex');
  const databaseName = `task_api_neon_${suffix}`;
  const ownerRole = `task_api_neon_owner_${suffix}`;
  const ownerPassword = randomBytes(18).toString('hex');
  let scenario: Scenario;

  beforeAll(async () => {
    const adminUrl = serverUrl();
    const major = await serverMajor(adminUrl);
    await createNeonLikeOwner(adminUrl, ownerRole, ownerPassword, databaseName);
    if (major >= 16) {
      // What CREATE ROLE gives the creator on 16+: ADMIN OPTION, neither INHERIT nor SET.
      await withClient(adminUrl, async (admin) => {
        for (const role of API_ROLES) {
          await admin.query(`grant ${role} to ${ownerRole} with admin option, inherit false, set false`);
        }
      });
    }
    scenario = {
      adminUrl,
      ownerUrl: withUser(withDatabase(adminUrl, databaseName), ownerRole, ownerPassword),
      ownerRole,
      // The shared authenticator's password is the main test database's: keep it.
      authenticatorPassword: decodeURIComponent(new URL(appUrl()).password),
      authenticatorUrl: '',
      major,
    };
  });

  afterAll(async () => {
    if (scenario) await dropNeonLikeOwner(scenario.adminUrl, ownerRole, databaseName);
  });

  describe('deployment steps', () => {
    it('npm run db:migrate with DATABASE_OWNER_URL and AUTHENTICATOR_PASSWORD succeeds as the owner (CREATEROLE, CREATEDB, not SUPERUSER, not BYPASSRLS)', async () => {
      const { rows } = await sql(scenario.ownerUrl, `select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user`);
      expect(rows[0]).toEqual({ rolsuper: false, rolbypassrls: false, rolcreaterole: true, rolcreatedb: true });
      const output = await npmDbMigrate(scenario.ownerUrl, scenario.authenticatorPassword);
      expect(output).toMatch(/migrations and policies applied/);
      expect(output).toMatch(/authenticator password set/);
      scenario.authenticatorUrl = withUser(withDatabase(scenario.adminUrl, databaseName), 'authenticator', scenario.authenticatorPassword);
    });

    it('scripts/neon-setup.sql without a password only checks, and passes', async () => {
      const output = await runSetupScript(scenario.ownerUrl);
      expect(output).toMatch(/password left unchanged/);
      expect(output).toMatch(/roles checked/);
      expect(output).toMatch(/RLS audit passed/);
      expect(output).toMatch(new RegExp(`DATABASE_URL=postgresql://authenticator:<password>@[^/]+/${databaseName}\\?sslmode=verify-full`));
    });

    it('scripts/neon-setup.sql refuses a -pooler host, and derives the pooled host from a direct Neon host', async () => {
      // libpq's hostaddr connects to the test server while psql sees a Neon host name.
      const owner = new URL(scenario.ownerUrl);
      const conninfo = (host: string) =>
        `host=${host} hostaddr=${owner.hostname} port=${owner.port || 5432} dbname=${databaseName} ` +
        `user=${ownerRole} password=${ownerPassword} sslmode=disable`;
      await expect(runSetupScript(conninfo('ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech'))).rejects.toThrow(
        /connected through the pooled \(-pooler\) host/,
      );
      const output = await runSetupScript(conninfo('ep-cool-darkness-123456.us-east-2.aws.neon.tech'));
      expect(output).toContain(
        `DATABASE_URL=postgresql://authenticator:<password>@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/${databaseName}?sslmode=verify-full`,
      );
    });

    isolationChecks(() => scenario);
  });
});

describe.skipIf(!psqlAvailable)('Neon-like owner, fresh cluster: the owner creates the API roles itself', () => {
  const databaseName = `task_api_neon_${randomBytes(4).toString('hex')}`;
  const ownerRole = 'neondb_owner';
  const ownerPassword = randomBytes(18).toString('hex');
  // Characters that need quoting in SQL and escaping in a URL.
  const authenticatorPassword = `it's a "${randomBytes(9).toString('base64url')}" pass/word`;
  let cluster: PrivateCluster | undefined;
  let scenario: Scenario;

  beforeAll(async () => {
    const binDir = await binDirFor(await serverMajor(serverUrl()));
    if (!binDir) throw new Error('no PostgreSQL binaries (initdb, pg_ctl) found for a private cluster');
    cluster = await startPrivateCluster(binDir);
    await createNeonLikeOwner(cluster.superuserUrl, ownerRole, ownerPassword, databaseName);
    scenario = {
      adminUrl: cluster.superuserUrl,
      ownerUrl: withUser(withDatabase(cluster.superuserUrl, databaseName), ownerRole, ownerPassword),
      ownerRole,
      authenticatorPassword,
      authenticatorUrl: withUser(withDatabase(cluster.superuserUrl, databaseName), 'authenticator', authenticatorPassword),
      major: cluster.major,
    };
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('the private cluster runs the test server\'s major version (when its binaries exist) and has none of the API roles', async () => {
    const target = await serverMajor(serverUrl());
    if (scenario.major !== target) {
      console.warn(`no PostgreSQL ${target} binaries for a private cluster: the fresh scenario runs on ${scenario.major}`);
    }
    expect(await serverMajor(scenario.adminUrl)).toBe(scenario.major);
    const { rows } = await sql(scenario.adminUrl, 'select rolname from pg_roles where rolname = any ($1)', [API_ROLES]);
    expect(rows).toEqual([]);
  });

  describe('deployment steps', () => {
    it('migrate() succeeds as the owner and creates the roles with least privilege', async () => {
      await migrate(scenario.ownerUrl);
      const { rows } = await sql(
        scenario.adminUrl,
        `select rolname, rolcanlogin, rolinherit, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb
           from pg_roles where rolname = any ($1) order by rolname`,
        [API_ROLES],
      );
      expect(rows).toEqual(
        API_ROLES.map((rolname) => ({
          rolname,
          rolcanlogin: rolname === 'authenticator',
          rolinherit: false,
          rolsuper: false,
          rolbypassrls: false,
          rolcreaterole: false,
          rolcreatedb: false,
        })),
      );
      if (scenario.major >= 16) {
        // The creator holds ADMIN OPTION on each: what lets it alter them and set the password later.
        const { rows: admin } = await sql(
          scenario.adminUrl,
          `select distinct r.rolname from pg_auth_members m join pg_roles r on r.oid = m.roleid
            where m.member = $1::regrole and m.admin_option order by 1`,
          [ownerRole],
        );
        expect(admin.map((row) => row.rolname)).toEqual(API_ROLES);
      }
    });

    it('migrate() again is a no-op that still succeeds (every deploy runs it)', async () => {
      await migrate(scenario.ownerUrl);
    });

    it('scripts/neon-setup.sql sets the password with plain psql and passes its checks', async () => {
      const output = await runSetupScript(scenario.ownerUrl, authenticatorPassword);
      expect(output).toMatch(/authenticator password set/);
      expect(output).toMatch(/roles checked/);
      expect(output).toMatch(/RLS audit passed/);
    });

    it('authenticator is refused with a wrong password (SCRAM is enforced here)', async () => {
      const wrong = withUser(withDatabase(scenario.adminUrl, databaseName), 'authenticator', 'not-the-password');
      await expect(withClient(wrong, async () => {})).rejects.toMatchObject({ code: '28P01' });
    });

    isolationChecks(() => scenario);
  });
});
