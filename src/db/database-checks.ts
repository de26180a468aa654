// What must hold before the gateway can serve from a database, checked at
// start-up (the process refuses to start) and by /health/ready: the database
// answers and accepts the login role; the role is not a superuser, cannot
// bypass row-level security, and owns nothing in schema api (a pasted owner
// URL would make every policy moot, or every request a 403); the schema is
// migrated at least to this build's migrations; and the role can become
// `authenticated`, as every request does.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import {
  explainCannotBecomeAuthenticated,
  explainPermanentError,
  isPermanentConnectError,
  MIGRATE_FIX,
  sqlstateOf,
  type ConnectionTarget,
} from './connection-errors.js';
import { OperatorError } from '../operator-error.js';
import { projectRoot } from './migrate.js';

export type CheckName = 'connect' | 'superuser' | 'bypassrls' | 'migrations' | 'owner' | 'set-role';

export interface CheckFailure {
  check: CheckName;
  /** Retrying may help (the database is down or busy); false: an operator must act. */
  transient: boolean;
  /** One paragraph: the cause and the fix. */
  message: string;
}

/** The versions of this build's migrations (dbmate's file-name prefixes), read from migrations/. */
export function expectedMigrationVersions(migrationsDir = path.join(projectRoot, 'migrations')): string[] {
  let files: string[];
  try {
    files = readdirSync(migrationsDir);
  } catch (error) {
    throw new OperatorError(
      `The migrations directory ${migrationsDir} cannot be read (${(error as { code?: string }).code ?? error}): the gateway compares it with the database's migration level. Deploy migrations/ next to dist/, as the Dockerfile does.`,
    );
  }
  return files
    .map((name) => /^(\d+)_.*\.sql$/.exec(name)?.[1])
    .filter((version): version is string => version !== undefined)
    .sort();
}

const USE_AUTHENTICATOR =
  'Fix: set DATABASE_URL to authenticator\'s URL (user authenticator, the password given as AUTHENTICATOR_PASSWORD to `npm run db:migrate`); never serve with the owner\'s or a superuser\'s URL.';

const ROLE_QUERY = `
  select r.rolname as role,
         r.rolsuper as superuser,
         r.rolbypassrls as bypass_rls,
         n.oid is not null as api_exists,
         to_regprocedure('public.task_api_schema_versions()') is not null as versions_known,
         coalesce(has_function_privilege(to_regprocedure('public.task_api_schema_versions()'), 'execute'), false) as versions_allowed,
         -- Objects in api owned by the login role or a role it can become.
         (select array_agg(owned order by rank, owned) from (
            select 0 as rank, 'schema api' as owned where pg_has_role(n.nspowner, 'MEMBER')
            union all
            select 1, format('%s %s', case when c.relkind in ('r', 'p') then 'table' when c.relkind = 'S' then 'sequence' else 'view' end, c.relname)
              from pg_class c
             where c.relnamespace = n.oid and c.relkind in ('r', 'p', 'v', 'm', 'S') and pg_has_role(c.relowner, 'MEMBER')
            union all
            select 2, format('function %s', p.oid::regprocedure)
              from pg_proc p where p.pronamespace = n.oid and pg_has_role(p.proowner, 'MEMBER')
          ) o) as owns
    from pg_roles r
    left join pg_namespace n on n.nspname = 'api'
   where r.rolname = current_user`;

interface RoleRow {
  role: string;
  superuser: boolean;
  bypass_rls: boolean;
  api_exists: boolean;
  versions_known: boolean;
  versions_allowed: boolean;
  owns: string[] | null;
}

/** Runs every check on one connection; undefined when all pass. */
export async function checkDatabaseWith(client: pg.ClientBase, expectedVersions: string[]): Promise<CheckFailure | undefined> {
  const { rows } = await client.query<RoleRow>(ROLE_QUERY);
  const row = rows[0];
  const role = `"${row.role}"`;
  if (row.superuser) {
    return { check: 'superuser', transient: false, message: `DATABASE_URL logs in as ${role}, a superuser: row-level security does not apply to it. ${USE_AUTHENTICATOR}` };
  }
  if (row.bypass_rls) {
    return { check: 'bypassrls', transient: false, message: `DATABASE_URL logs in as ${role}, which has BYPASSRLS: row-level security does not apply to it. ${USE_AUTHENTICATOR}` };
  }
  if (!row.api_exists) {
    return { check: 'migrations', transient: false, message: `The database has no schema api: it was never migrated. ${MIGRATE_FIX}` };
  }
  if (!row.versions_known) {
    return {
      check: 'migrations',
      transient: false,
      message: `The database was migrated by an older build: it lacks this build's migrations (from ${expectedVersions.at(-1) ?? '?'} back). ${MIGRATE_FIX}`,
    };
  }
  // Only authenticator may read the versions; another role fails the checks below.
  const applied = row.versions_allowed
    ? new Set((await client.query<{ versions: string[] }>('select public.task_api_schema_versions() as versions')).rows[0].versions)
    : undefined;
  const missing = applied ? expectedVersions.filter((version) => !applied.has(version)) : [];
  if (missing.length) {
    return {
      check: 'migrations',
      transient: false,
      message: `The database lacks ${missing.length} of this build's migrations (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}). ${MIGRATE_FIX}`,
    };
  }
  if (row.owns?.length) {
    return {
      check: 'owner',
      transient: false,
      message: `DATABASE_URL logs in as ${role}, which owns ${row.owns.slice(0, 3).join(', ')}${row.owns.length > 3 ? ` and ${row.owns.length - 3} more objects` : ''} in schema api: it is the schema owner's URL, and an owner is not bound by the policies on what it owns. ${USE_AUTHENTICATOR}`,
    };
  }
  try {
    await client.query("select set_config('role', 'authenticated', true)");
  } catch (error) {
    if (sqlstateOf(error) !== '42501') throw error;
    return { check: 'set-role', transient: false, message: explainCannotBecomeAuthenticated((error as Error).message, { user: row.role }) };
  }
  if (!applied) {
    return {
      check: 'migrations',
      transient: false,
      message: `DATABASE_URL logs in as ${role}, which may not read the schema's migration level (public.task_api_schema_versions()): it is not authenticator. ${USE_AUTHENTICATOR}`,
    };
  }
  return undefined;
}

/** A failure to connect, as a check failure. */
export function connectFailure(error: unknown, target: ConnectionTarget): CheckFailure {
  if (isPermanentConnectError(error)) return { check: 'connect', transient: false, message: explainPermanentError(error, target)! };
  const reason = error instanceof Error ? error.message || (error as { code?: string }).code || error.name : String(error);
  return {
    check: 'connect',
    transient: true,
    message:
      `The database${target.host ? ` at ${target.host}` : ''} does not answer, or takes no new connections for now (${reason}). ` +
      'Fix: start it, correct the host and port in DATABASE_URL, or raise its connection limit; DB_CONNECT_RETRY_MS is how long start-up waits for it.',
  };
}

/** Gets a connection from the pool and runs the checks on it. */
export async function checkDatabase(pool: pg.Pool, expectedVersions: string[], target: ConnectionTarget): Promise<CheckFailure | undefined> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    return connectFailure(error, target);
  }
  try {
    const failure = await checkDatabaseWith(client, expectedVersions);
    client.release();
    return failure;
  } catch (error) {
    client.release(error as Error);
    const message = explainPermanentError(error, target);
    if (message) return { check: 'migrations', transient: false, message };
    return connectFailure(error, target);
  }
}
