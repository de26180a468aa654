// PostgREST's per-request protocol: one transaction per request, in which the
// role becomes `authenticated` and request.jwt.claims holds the verified
// claims, both transaction-local (set_config(..., true)) so nothing outlives
// the transaction on a pooled connection.
//
// The four statements (BEGIN, set role and claims, the operation, COMMIT) are
// pipelined: sent together and answered together, one network round trip,
// every value a bound parameter.
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
  /** node-postgres options: rows as arrays, and how values are parsed. */
  rowMode?: 'array';
  types?: { getTypeParser: (oid: number, format?: 'text' | 'binary') => (value: string) => unknown };
}

export interface RequestRunnerOptions {
  pool: pg.Pool;
  /** Named prepared statements; off behind poolers that cannot keep them. */
  preparedStatements: boolean;
  statementTimeoutMs: number;
  /** For how long failed connection attempts are retried before giving up. */
  connectRetryMs: number;
  maxTasksPerUser: number;
}

export type RequestRunner = <Row = pg.QueryResultRow>(
  identity: RequestIdentity,
  mode: AccessMode,
  statement: Statement,
) => Promise<Row[]>;

/** The statements around each request's operation, exported for the benchmark's replay. */
export const BEGIN_READ = 'begin read only';
export const BEGIN_WRITE = 'begin';
export const COMMIT = 'commit';

export const SET_ROLE_AND_CLAIMS = {
  name: 'task_api_set_role_and_claims',
  text:
    "select set_config('role', 'authenticated', true), " +
    "set_config('request.jwt.claims', $1, true), " +
    "set_config('statement_timeout', $2, true), " +
    "set_config('task_api.max_tasks_per_user', $3, true), " +
    "set_config('timezone', 'UTC', true)",
};

/** An error PostgreSQL reported (it has a SQLSTATE); anything else means the connection failed. */
export function isServerError(error: unknown): boolean {
  return typeof (error as { code?: unknown })?.code === 'string' && 'severity' in (error as object);
}

/** The transaction did not commit, or its outcome is unknown: never report success. */
export class CommitFailedError extends Error {}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Gets a connection, retrying with backoff while the server refuses or is
 * still starting (a Neon compute waking from scale-to-zero). Only connection
 * set-up is retried, never a statement.
 */
async function connectWithRetry(pool: pg.Pool, retryMs: number): Promise<pg.PoolClient> {
  const deadline = Date.now() + retryMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
    try {
      return await pool.connect();
    } catch (error) {
      if (Date.now() + delay > deadline) throw error;
      await sleep(delay);
    }
  }
}

export function createRequestRunner(options: RequestRunnerOptions): RequestRunner {
  const named = <T extends { name?: string }>(query: T) =>
    options.preparedStatements ? query : { ...query, name: undefined };
  const setRoleAndClaims = named(SET_ROLE_AND_CLAIMS);
  const statementTimeout = `${options.statementTimeoutMs}ms`;
  const maxTasks = String(options.maxTasksPerUser);

  return async function runAsUser<Row = pg.QueryResultRow>(
    identity: RequestIdentity,
    mode: AccessMode,
    statement: Statement,
  ): Promise<Row[]> {
    const client = await connectWithRetry(options.pool, options.connectRetryMs);
    // Corked, the four pipelined statements leave in one write: on loopback
    // and in containers each socket write is a costly system call.
    const socket = (client as unknown as { connection: { stream: NodeJS.WritableStream & { cork(): void; uncork(): void } } })
      .connection.stream;
    socket.cork();
    const pending = [
      client.query(mode === 'read' ? BEGIN_READ : BEGIN_WRITE),
      client.query({ ...setRoleAndClaims, values: [identity.claimsJson, statementTimeout, maxTasks] }),
      client.query(named(statement) as pg.QueryConfig),
      client.query(COMMIT),
    ];
    socket.uncork();
    const outcomes = await Promise.allSettled(pending);

    const failure = outcomes.find((outcome) => outcome.status === 'rejected');
    const connectionBroken = failure && !isServerError(failure.reason);
    client.release(connectionBroken ? (failure.reason as Error) : undefined);

    // The operation's own error (42501, PT404, ...) explains the request best.
    const operation = outcomes[2];
    if (operation.status === 'rejected' && isServerError(operation.reason)) throw operation.reason;
    if (failure) throw failure.reason;

    const commit = outcomes[3] as PromiseFulfilledResult<pg.QueryResult>;
    if (commit.value.command !== 'COMMIT') {
      throw new CommitFailedError(`transaction ended with ${commit.value.command}`);
    }
    return (operation as PromiseFulfilledResult<pg.QueryResult>).value.rows as Row[];
  };
}
