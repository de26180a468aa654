// graphile/starter-style database access for tests: connect as the owner,
// open a transaction, become `authenticated` with a given user's claims, act
// through SQL, and roll everything back.
import pg from 'pg';
import { inject } from 'vitest';

export const ownerUrl = () => inject('ownerUrl');
export const appUrl = () => inject('appUrl');

export async function connect(url = ownerUrl()): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
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
  const client = await connect();
  try {
    await client.query('begin');
    return await fn(client);
  } finally {
    await client.query('rollback').catch(() => {});
    await client.end();
  }
}

/** Runs statements as a user with savepoints, so an expected error does not abort the test transaction. */
export async function asUser<T>(client: pg.ClientBase, sub: string | null, fn: () => Promise<T>): Promise<T> {
  await client.query('reset role');
  await becomeUser(client, sub);
  return fn();
}

/** Runs one query in a savepoint and resolves to its SQLSTATE, or undefined when it succeeds. */
export async function sqlstateOf(client: pg.ClientBase, text: string, values: unknown[] = []): Promise<string | undefined> {
  await client.query('savepoint attempt');
  try {
    await client.query(text, values);
    await client.query('release savepoint attempt');
    return undefined;
  } catch (error) {
    await client.query('rollback to savepoint attempt');
    return (error as { code?: string }).code;
  }
}
