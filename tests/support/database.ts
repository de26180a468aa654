// graphile/starter-style database access for tests: connect as the owner,
// open a transaction, become `authenticated` with a given user's claims, act
// through SQL, and roll everything back.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

export const ownerUrl = () => inject('ownerUrl');
export const appUrl = () => inject('appUrl');

export async function connect(url = ownerUrl()): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

/** Runs fn on a new connection to `url`, closed afterwards. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(url);
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Sets the role and claims the way the gateway does (transaction-local). */
export async function becomeUser(client: pg.ClientBase, sub: string | null, role = 'authenticated') {
  await client.query(
    `select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)`,
    [role, sub === null ? '' : JSON.stringify({ sub, role })],
  );
}

/**
 * Runs fn inside a transaction that is always rolled back. fn receives a
 * client that starts as the owner; call becomeUser (or asUser) to drop to a
 * user's identity.
 */
export async function rolledBack<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return rolledBackOn(ownerUrl(), fn);
}

/** Runs statements as a user with savepoints, so an expected error does not abort the test transaction. */
export async function asUser<T>(client: pg.ClientBase, sub: string | null, fn: () => Promise<T>): Promise<T> {
  await client.query('reset role');
  await becomeUser(client, sub);
  return fn();
}

/** Runs one query in a savepoint and resolves to its SQLSTATE, or undefined when it succeeds. */
export async function sqlstateOf(client: pg.ClientBase, text: string, values: unknown[] = []): Promise<string | undefined> {
  return (await errorOf(client, text, values))?.code;
}

// ---------------------------------------------------------------------------
// Helpers for the tests/db-*.test.ts suites.

export const serverUrl = () => inject('serverUrl');

/** A user id no other test uses, so committed rows never collide. */
export function uniqueSub(label: string): string {
  return `${label}-${randomUUID()}`;
}

/** Like rolledBack, but on a connection to `url` (e.g. appUrl(): logged in as authenticator). */
export async function rolledBackOn<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(url);
  try {
    await client.query('begin');
    return await fn(client);
  } finally {
    await client.query('rollback').catch(() => {});
    await client.end();
  }
}

/** Becomes `role` for the rest of the transaction without touching request.jwt.claims. */
export async function becomeRole(client: pg.ClientBase, role: string) {
  await client.query(`select set_config('role', $1, true)`, [role]);
}

/** Sets request.jwt.claims to exactly `claims` for the rest of the transaction. */
export async function setClaims(client: pg.ClientBase, claims: string) {
  await client.query(`select set_config('request.jwt.claims', $1, true)`, [claims]);
}

/** What a test needs to know about a failed statement. */
export interface SqlError {
  code?: string;
  constraint?: string;
  message: string;
  detail?: string;
  hint?: string;
}

/** Runs one query in a savepoint and resolves to its error, or undefined when it succeeds. */
export async function errorOf(client: pg.ClientBase, text: string, values: unknown[] = []): Promise<SqlError | undefined> {
  await client.query('savepoint attempt');
  try {
    await client.query(text, values);
    await client.query('release savepoint attempt');
    return undefined;
  } catch (error) {
    await client.query('rollback to savepoint attempt');
    const { code, constraint, message, detail, hint } = error as pg.DatabaseError;
    return { code, constraint, message, detail, hint };
  }
}

/**
 * Runs fn in one committed transaction on its own authenticator connection,
 * as `authenticated` with sub's claims: exactly what the gateway does per request.
 */
export async function committedAsUser<T>(sub: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return committedOn(appUrl(), (client) => becomeUser(client, sub), fn);
}

/**
 * Runs setUp then fn in one transaction on a new connection to `url`:
 * committed when both succeed, else rolled back and the error rethrown.
 */
export async function committedOn<T>(
  url: string,
  setUp: (client: pg.Client) => Promise<unknown>,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connect(url);
  try {
    await client.query('begin');
    await setUp(client);
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    await client.end();
  }
}

/** A row of api.tasks as the tests see it (version as a number). */
export interface Task {
  id: string;
  user_id: string;
  title: string;
  description: string | null;
  completed: boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export function toTask(row: Record<string, unknown>): Task {
  return { ...(row as unknown as Task), version: Number(row.version) };
}

/**
 * Calls an api function that returns a task, with named arguments:
 * callTask(db, 'toggle_task', { p_id: id, p_if_match: [1] }).
 */
export async function callTask(client: pg.ClientBase, fn: string, args: Record<string, unknown>): Promise<Task> {
  const { text, values } = taskCall(fn, args);
  const { rows } = await client.query(text, values);
  return toTask(rows[0]);
}

/** The SQL text and values of a call to api.<fn> with named arguments. */
export function taskCall(fn: string, args: Record<string, unknown>): { text: string; values: unknown[] } {
  const names = Object.keys(args);
  const list = names.map((name, i) => `${name} => $${i + 1}`).join(', ');
  return {
    text: `select * from api.${fn}(${list})`,
    values: names.map((name) => {
      const value = args[name];
      return value !== null && typeof value === 'object' && !Array.isArray(value) ? JSON.stringify(value) : value;
    }),
  };
}

/** Creates a task as `sub` (inside the caller's transaction) and returns it. */
export async function createTaskAs(client: pg.ClientBase, sub: string, title = 'a task', description: string | null = null): Promise<Task> {
  return asUser(client, sub, () => callTask(client, 'create_task', { p_title: title, p_description: description }));
}

/** Reads a task back as its owner `sub`; undefined when that user cannot see it. */
export async function readTaskAs(client: pg.ClientBase, sub: string, id: string): Promise<Task | undefined> {
  const { rows } = await asUser(client, sub, () => client.query('select * from api.tasks where id = $1', [id]));
  return rows[0] && toTask(rows[0]);
}
