// The migrations' life cycle on a database of its own: migrate() twice,
// `dbmate rollback` once per file in migrations/, migrate() again. The steps
// build on each other, so the tests in this file run in order.
//
// Roles are cluster-wide and shared with the main test database (and any
// other database on the server), so this file also checks that rolling back
// here does not take away roles that database still needs.
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAudit } from '../src/db/audit.js';
import { withDatabase } from '../src/db/database.js';
import { dbmate, migrate, projectRoot } from '../src/db/migrate.js';
import { appUrl, becomeUser, connect, ownerUrl, rolledBackOn, serverUrl } from './support/database.js';

const migrationsDir = path.join(projectRoot, 'migrations');
/** The roles the roles migration creates, which every database of the API shares. */
const API_ROLES = ['anon', 'authenticated', 'authenticator', 'task_probe'];
/** What the tasks migration (the second) leaves in schema api on its own. */
const TASKS_MIGRATION_FUNCTIONS = ['current_user_id', 'tasks_before_write', 'trim_white_space'];

const databaseName = `task_api_mig_${randomBytes(4).toString('hex')}`;
let url: string;
/** The migration files, in the order dbmate applies them, and their versions. */
let migrationFiles: string[];
let versions: string[];
/** apiCatalog(url) right after the first migrate(). */
let migratedCatalog: string[];

/** Runs one query on a short-lived connection to `target`. */
async function query(target: string, text: string, values: unknown[] = []) {
  const client = await connect(target);
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

/** The objects a migration run leaves in schema api, as comparable text. */
async function apiCatalog(target: string) {
  const { rows } = await query(
    target,
    `select 'function ' || p.oid::regprocedure || ' owner ' || pg_get_userbyid(p.proowner)
            || ' acl ' || coalesce(p.proacl::text, '') as item
       from pg_proc p where p.pronamespace = 'api'::regnamespace
     union all
     select 'relation ' || c.relname || ' rls ' || c.relrowsecurity || '/' || c.relforcerowsecurity
            || ' acl ' || coalesce(c.relacl::text, '')
       from pg_class c where c.relnamespace = 'api'::regnamespace
     union all
     select 'policy ' || policyname || ' ' || cmd || ' ' || roles::text || ' ' || coalesce(qual, '')
            || ' ' || coalesce(with_check, '')
       from pg_policies where schemaname = 'api'
     order by 1`,
  );
  return rows.map((row) => row.item as string);
}

async function apiSchemaExists(target: string): Promise<boolean> {
  const { rows } = await query(target, `select to_regnamespace('api') is not null as present`);
  return rows[0].present;
}

async function apiFunctions(target: string): Promise<string[]> {
  const { rows } = await query(
    target,
    `select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = 'api' order by 1`,
  );
  return rows.map((row) => row.proname);
}

async function apiPolicies(target: string): Promise<string[]> {
  const { rows } = await query(target, `select tablename || '.' || policyname as policy from pg_policies where schemaname = 'api' order by 1`);
  return rows.map((row) => row.policy);
}

async function appliedVersions(target: string): Promise<string[]> {
  const { rows } = await query(target, 'select version from public.schema_migrations order by version');
  return rows.map((row) => row.version);
}

/** The roles that objects in the main test database depend on (grants, policies, ownership). */
async function rolesTheMainDatabaseDependsOn(): Promise<string[]> {
  const { rows } = await query(
    ownerUrl(),
    `select distinct r.rolname from pg_shdepend d join pg_roles r on r.oid = d.refobjid
      where d.refclassid = 'pg_authid'::regclass
        and d.dbid = (select oid from pg_database where datname = current_database())
      order by 1`,
  );
  return rows.map((row) => row.rolname);
}

async function rolesThatExist(roles: string[]): Promise<string[]> {
  const { rows } = await query(serverUrl(), 'select rolname from pg_roles where rolname = any ($1) order by 1', [roles]);
  return rows.map((row) => row.rolname);
}

/** Rolls back the newest applied migration and checks that exactly that one was rolled back. */
async function rollbackOne() {
  const before = await appliedVersions(url);
  await dbmate(url, 'rollback');
  expect(await appliedVersions(url)).toEqual(before.slice(0, -1));
}

/** The main test database still serves requests: authenticator logs in and acts as a user. */
async function mainDatabaseServesRequests(): Promise<boolean> {
  return rolledBackOn(appUrl(), async (db) => {
    await becomeUser(db, 'migration-test-user');
    await db.query(`select api.create_task('still works')`);
    const { rows } = await db.query('select title from api.tasks');
    return rows.length === 1 && rows[0].title === 'still works';
  });
}

/** The migrate:down section of a migration file. */
async function downSection(file: string): Promise<string> {
  const text = await readFile(path.join(migrationsDir, file), 'utf8');
  return text.split('-- migrate:down')[1];
}

beforeAll(async () => {
  migrationFiles = (await readdir(migrationsDir)).filter((name) => name.endsWith('.sql')).sort();
  versions = migrationFiles.map((name) => name.split('_')[0]);
  const server = await connect(serverUrl());
  try {
    await server.query(`create database ${server.escapeIdentifier(databaseName)}`);
  } finally {
    await server.end();
  }
  url = withDatabase(serverUrl(), databaseName);
});

afterAll(async () => {
  const server = await connect(serverUrl());
  try {
    await server.query(`drop database if exists ${server.escapeIdentifier(databaseName)} with (force)`);
  } finally {
    await server.end();
  }
});

describe('migrations on a fresh database', () => {
  it('migrate() applies every migration and policy file, giving the same schema as the main test database', async () => {
    await migrate(url);
    expect(versions.slice(0, 3)).toEqual(['20261127000001', '20261127000002', '20261127000003']);
    expect(await appliedVersions(url)).toEqual(versions);
    expect(await apiFunctions(url)).toEqual(await apiFunctions(ownerUrl()));
    expect(await apiFunctions(url)).toEqual(expect.arrayContaining([...TASKS_MIGRATION_FUNCTIONS, 'task_exists', 'toggle_task']));
    expect(await apiPolicies(url)).toEqual(await apiPolicies(ownerUrl()));
    const audit = await runAudit(url);
    expect(audit.passed, audit.report).toBe(true);
    migratedCatalog = await apiCatalog(url);
  });

  it('migrate() a second time succeeds and changes nothing', async () => {
    await migrate(url);
    expect(await apiCatalog(url)).toEqual(migratedCatalog);
    expect(await appliedVersions(url)).toEqual(versions);
  });

  it('rolling back down to the tasks migration leaves api.tasks and its helpers only', async () => {
    for (let i = versions.length; i > 2; i--) await rollbackOne();
    expect(await appliedVersions(url)).toEqual(versions.slice(0, 2));
    expect(await apiFunctions(url)).toEqual(TASKS_MIGRATION_FUNCTIONS);
    const { rows } = await query(url, `select relname from pg_class where relnamespace = 'api'::regnamespace and relkind = 'r'`);
    expect(rows).toEqual([{ relname: 'tasks' }]);
  });

  it('rolling back the tasks migration drops schema api with everything in it', async () => {
    await rollbackOne();
    expect(await apiSchemaExists(url)).toBe(false);
    expect(await apiFunctions(url)).toEqual([]);
  });

  it('rolling back the roles migration keeps every role another database still depends on', async () => {
    const needed = await rolesTheMainDatabaseDependsOn();
    expect(needed).toEqual(expect.arrayContaining(['authenticated', 'task_probe']));

    // authenticator and anon have no catalog dependents in the main database
    // (authenticator only logs in; anon holds no grants), so the down
    // migration would drop them from the whole cluster and lock the main test
    // database's gateway out (see the known-defect test below). A grant on
    // this throwaway database keeps them for the duration of the run.
    const database = `"${databaseName}"`;
    await query(serverUrl(), `grant connect on database ${database} to authenticator, anon`);
    try {
      await rollbackOne();
    } finally {
      await query(serverUrl(), `revoke connect on database ${database} from authenticator, anon`);
    }
    expect(await appliedVersions(url)).toEqual([]);
    expect(await rolesThatExist(needed)).toEqual(needed);
    expect(await rolesThatExist(API_ROLES)).toEqual(API_ROLES);
    expect(await mainDatabaseServesRequests()).toBe(true);
  });

  it('migrate() after the full rollback restores the schema, and the audit passes', async () => {
    await migrate(url);
    expect(await appliedVersions(url)).toEqual(versions);
    expect(await apiCatalog(url)).toEqual(migratedCatalog);
    const audit = await runAudit(url);
    expect(audit.passed, audit.report).toBe(true);
    expect(await mainDatabaseServesRequests()).toBe(true);
  });

  // The down section runs in a transaction that is rolled back, so nothing is really dropped.
  it('rolling back the roles migration keeps authenticator and anon while another database uses them', async () => {
    const dropped = await rolledBackOn(url, async (db) => {
      await db.query(await downSection(migrationFiles[0]));
      const { rows } = await db.query('select rolname from pg_roles where rolname = any ($1)', [API_ROLES]);
      const remaining = rows.map((row) => row.rolname as string);
      return API_ROLES.filter((role) => !remaining.includes(role));
    });
    expect(dropped).toEqual([]);
  });
});
