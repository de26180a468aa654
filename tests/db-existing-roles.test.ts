// The roles migration on a cluster where some API roles exist already, made by
// another role than the migrating owner: Neon's Data API makes `authenticated`
// (and `anonymous`), and a role made in Neon's Console has BYPASSRLS and
// neon_superuser membership. A safe role is adopted as it is; an unsafe one
// stops the migration before it changes anything, with one paragraph saying
// what is wrong and what to do.
//
// A private cluster (roles are cluster-wide) of the test server's major
// version; the owner is shaped like Neon's neondb_owner (CREATEROLE CREATEDB
// BYPASSRLS REPLICATION, member of neon_superuser, not a superuser). On
// PostgreSQL 16+ only a role's creator (ADMIN OPTION) may alter it or grant
// it; on 15 any CREATEROLE role may, so some outcomes differ by version.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAudit } from '../src/db/audit.js';
import { setAuthenticatorPassword, withDatabase, withUser } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { serverUrl, withClient } from './support/database.js';
import { bearer, createTestApp, json, tokenFor } from './support/http.js';
import { binDirFor, startPrivateCluster, type PrivateCluster } from './support/private-cluster.js';

const API_ROLES = ['anon', 'anonymous', 'authenticated', 'authenticator', 'idempotency_janitor', 'task_probe'];

describe('the roles migration where API roles already exist, made by another role', () => {
  let cluster: PrivateCluster;
  let major: number;
  const ownerPassword = randomBytes(12).toString('hex');
  const adminPassword = randomBytes(12).toString('hex');
  const database = 'neondb';
  let ownerUrl: string;
  /** A CREATEROLE role other than the owner (what made the Data API's roles). */
  let otherUrl: string;
  const superuser = (text: string) => withClient(cluster.superuserUrl, (c) => c.query(text));
  const other = (text: string) => withClient(otherUrl, (c) => c.query(text));

  beforeAll(async () => {
    const { rows } = await withClient(serverUrl(), (c) => c.query(`select current_setting('server_version_num')::int / 10000 as major`));
    const binDir = await binDirFor(rows[0].major);
    if (!binDir) throw new Error('no PostgreSQL binaries (initdb, pg_ctl) found for a private cluster');
    cluster = await startPrivateCluster(binDir);
    major = cluster.major;
    await superuser(`create role neon_superuser nologin createrole createdb bypassrls replication`);
    await superuser(
      `create role neondb_owner login password '${ownerPassword}' createrole createdb bypassrls replication nosuperuser in role neon_superuser`,
    );
    await superuser(`create role data_api_admin login password '${adminPassword}' createrole`);
    ownerUrl = withUser(withDatabase(cluster.superuserUrl, database), 'neondb_owner', ownerPassword);
    otherUrl = withUser(withDatabase(cluster.superuserUrl, 'postgres'), 'data_api_admin', adminPassword);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  /** A fresh database owned by neondb_owner, and none of the API roles. */
  async function reset() {
    await superuser(`drop database if exists ${database} with (force)`);
    for (const role of API_ROLES) {
      await superuser(`drop role if exists ${role}`);
    }
    await superuser(`create database ${database} owner neondb_owner`);
  }

  async function roles() {
    const { rows } = await withClient(cluster.superuserUrl, (c) =>
      c.query(`select rolname, rolcanlogin, rolinherit, rolbypassrls from pg_roles where rolname = any ($1) order by rolname`, [API_ROLES]),
    );
    return rows;
  }

  /** Nothing of the schema is there, and the roles are as before. */
  async function expectNothingChanged(before: unknown) {
    const { rows } = await withClient(ownerUrl, (c) =>
      c.query(`select to_regnamespace('api') as api, (select count(*)::int from schema_migrations) as applied`),
    );
    expect(rows[0]).toEqual({ api: null, applied: 0 });
    expect(await roles()).toEqual(before);
  }

  /** The migrated database serves requests, per user, through the real gateway. */
  async function expectGatewayWorks(authenticatorPassword: string) {
    const testApp = await createTestApp({
      appUrl: withUser(withDatabase(cluster.superuserUrl, database), 'authenticator', authenticatorPassword),
    });
    try {
      const alice = await tokenFor('alice');
      const created = await testApp.app.inject({ method: 'POST', url: '/api/tasks', headers: bearer(alice), payload: { title: 'adopted' } });
      expect(created.statusCode, created.body).toBe(201);
      const asBob = await testApp.app.inject({ method: 'GET', url: `/api/tasks/${json(created).id}`, headers: bearer(await tokenFor('bob')) });
      expect(asBob.statusCode).toBe(403);
    } finally {
      await testApp.close();
    }
    const { passed, report } = await runAudit(ownerUrl);
    expect(passed, report).toBe(true);
  }

  it("authenticator made in Neon's Console (BYPASSRLS, member of neon_superuser): refused before anything changes, saying what to do", async () => {
    await reset();
    await superuser(`create role authenticator login password 'x' bypassrls in role neon_superuser`);
    const before = await roles();
    const failure = migrate(ownerUrl);
    await expect(failure).rejects.toThrow(/stopped before changing anything: role authenticator already exists and has BYPASSRLS, is a member of neon_superuser/);
    await expect(failure).rejects.toThrow(/DROP ROLE authenticator/);
    await expectNothingChanged(before);
  });

  it('anon that can log in: refused, nothing changed', async () => {
    await reset();
    await other(`create role anon login password 'x'`);
    const before = await roles();
    await expect(migrate(ownerUrl)).rejects.toThrow(/role anon already exists and can log in/);
    await expectNothingChanged(before);
  });

  it('authenticated that is a member of pg_read_all_data: refused, nothing changed', async () => {
    await reset();
    await other(`create role authenticated nologin`);
    await superuser(`grant pg_read_all_data to authenticated`);
    const before = await roles();
    await expect(migrate(ownerUrl)).rejects.toThrow(/role authenticated already exists and is a member of pg_read_all_data/);
    await expectNothingChanged(before);
  });

  it('a safe authenticated made by another role is adopted as it is (on 16+ once its creator lets the owner grant it)', async () => {
    await reset();
    await other(`create role authenticated nologin`); // INHERIT, as CREATE ROLE makes it
    const before = await roles();
    if (major >= 16) {
      await expect(migrate(ownerUrl)).rejects.toThrow(
        /neondb_owner may not alter role authenticated \(created by another role\) to make authenticator a member of it.*GRANT authenticated TO neondb_owner WITH ADMIN OPTION/,
      );
      await expectNothingChanged(before);
      await other(`grant authenticated to neondb_owner with admin option`);
    }
    await migrate(ownerUrl);
    const after = await roles();
    expect(after.find((r) => r.rolname === 'authenticated')).toEqual(before.find((r) => r.rolname === 'authenticated'));
    await setAuthenticatorPassword(ownerUrl, 'authenticator-password');
    await expectGatewayWorks('authenticator-password');
  });

  it('a safe authenticator made by another role (LOGIN NOINHERIT) is adopted: it gets the API roles, keeps its password', async () => {
    await reset();
    await other(`create role authenticator login noinherit password 'its-own-password'`);
    await migrate(ownerUrl);
    await expectGatewayWorks('its-own-password');
  });

  it("the Data API's anonymous made by another role: adopted when safe, refused when it can log in", async () => {
    await reset();
    await other(`create role anonymous nologin`);
    await migrate(ownerUrl);
    expect((await roles()).find((r) => r.rolname === 'anonymous')).toMatchObject({ rolcanlogin: false, rolinherit: true });

    await reset();
    await other(`create role anonymous login password 'x'`);
    await expect(migrate(ownerUrl)).rejects.toThrow(/role anonymous already exists and can log in/);
  });
});
