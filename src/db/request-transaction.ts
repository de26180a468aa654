// PostgREST's per-request protocol: one transaction per request, in which the
// role becomes `authenticated` and request.jwt.claims holds the verified
// claims, both transaction-local (set_config(..., true)) so nothing outlives
// the transaction on a pooled connection.
import type pg from 'pg';

export type AccessMode = 'read' | 'write';

export interface RequestIdentity {
  /** The verified JWT claims, serialized once per token. */
  claimsJson: string;
}

export interface Statement {
  /** A name makes it a prepared statement, parsed once per connection. */
  name?: string;
  text: string;
  values: unknown[];
}

const SET_ROLE_AND_CLAIMS =
  "select set_config('role', 'authenticated', true), " +
  "set_config('request.jwt.claims', $1, true), " +
  "set_config('timezone', 'UTC', true), " +
  "set_config('statement_timeout', $2, true)";

export interface RequestTransactionOptions {
  prepared: boolean;
  statementTimeoutMs: number;
}

/**
 * Runs one statement as the verified user and commits before returning, so a
 * result the caller sees is durable.
 */
export async function runAsUser<Row extends pg.QueryResultRow>(
  pool: pg.Pool,
  identity: RequestIdentity,
  mode: AccessMode,
  statement: Statement,
  options: RequestTransactionOptions,
): Promise<Row[]> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(mode === 'read' ? 'begin read only' : 'begin');
    await client.query({
      name: options.prepared ? 'task_api_set_role_and_claims' : undefined,
      text: SET_ROLE_AND_CLAIMS,
      values: [identity.claimsJson, `${options.statementTimeoutMs}ms`],
    });
    const result = await client.query<Row>({
      name: options.prepared ? statement.name : undefined,
      text: statement.text,
      values: statement.values,
    });
    await client.query('commit');
    return result.rows;
  } catch (error) {
    broken = error as Error;
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    // A connection whose transaction failed for a reason other than the
    // statement's own error (lost connection, timeout) is not reused.
    client.release(broken && !(broken as { code?: string }).code ? broken : undefined);
  }
}
