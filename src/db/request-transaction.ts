// PostgREST's per-request protocol: one transaction per request, in which the
// role becomes `authenticated` and request.jwt.claims holds the verified
// claims, both transaction-local (set_config(..., true)) so nothing outlives
// the transaction on a pooled connection.
//
// The two statements (set role and claims, then the operation) go out as one
// pipelined batch with a single Sync: one write, one round trip, every value
// a bound parameter, committed by PostgreSQL before it answers
// (see transaction-pipeline.ts).
import type { Readable } from 'node:stream';
import type pg from 'pg';
import type { ConnectionGate } from './connection-gate.js';
import { NamedStatements } from './named-statements.js';
import { createUserSlots } from './per-user-slots.js';
import {
  DatabaseMisconfiguredError,
  explainCannotBecomeAuthenticated,
  explainPermanentError,
  isPermanentConnectError,
  sqlstateOf,
} from './connection-errors.js';
import { poolerHadNoServer } from './pooler-errors.js';
import type { BatchProgress, PipelinedStatement, RowCollector } from './transaction-pipeline.js';
import { gatewayNow, writeDeadline } from './write-deadline.js';
import { DEFAULT_MAX_BYTES_PER_SECOND, DEFAULT_PIECE_BYTES, StreamedTransaction, type ChunkedCollector } from './row-stream.js';

export type AccessMode = 'read' | 'write';

export interface RequestIdentity {
  /** The verified JWT claims, serialized once per token. */
  claimsJson: string;
}

export type Statement = PipelinedStatement;

export interface RequestRunnerOptions {
  pool: pg.Pool;
  /** Named prepared statements; off behind poolers that cannot keep them. */
  preparedStatements: boolean;
  statementTimeoutMs: number;
  /** For how long failed connection attempts are retried before giving up. */
  connectRetryMs: number;
  maxTasksPerUser: number;
  /** Refuses requests at once while the database is known to be down (see connection-gate.ts). */
  gate?: ConnectionGate;
  /** Unset: the database's default (migrations/20261202130000_storage_quota_and_lock_keys.sql). */
  maxBytesPerUser?: number;
  maxIdempotencyKeysPerUser?: number;
}

/** Runs one statement as the user; the collector makes the result of its rows. */
export type RequestRunner = (<Result>(
  identity: RequestIdentity,
  mode: AccessMode,
  statement: Statement,
  collector: RowCollector<Result>,
) => Promise<Result>) & {
  /**
   * Runs one read as the user and streams the rendered rows (src/db/row-stream.ts):
   * a Buffer when the result is short, else a Readable to send as the body.
   */
  stream(identity: RequestIdentity & { sub: string }, statement: Statement, collector: ChunkedCollector): Promise<Buffer | Readable>;
};

/**
 * The first statement of every request. A read is made read-only
 * (transaction_read_only may be switched on at any point of a transaction).
 */
export const SET_ROLE_AND_CLAIMS = {
  name: 'task_api_set_role_and_claims',
  text:
    "select set_config('role', 'authenticated', true), " +
    "set_config('request.jwt.claims', $1, true), " +
    "set_config('statement_timeout', $2, true), " +
    "set_config('task_api.max_tasks_per_user', $3, true), " +
    "set_config('transaction_read_only', $4, true), " +
    "set_config('timezone', 'UTC', true), " +
    "set_config('task_api.max_bytes_per_user', $5, true), " +
    "set_config('task_api.max_idempotency_keys_per_user', $6, true)",
};

/** An error PostgreSQL reported (it has a SQLSTATE); anything else means the connection failed. */
export function isServerError(error: unknown): boolean {
  return typeof (error as { code?: unknown })?.code === 'string' && 'severity' in (error as object);
}

/**
 * The database could not be reached, or a read's connection failed before
 * the answer arrived: nothing was changed, and a retry is safe.
 */
export class DatabaseUnavailableError extends Error {
  /** Seconds to wait before retrying, when the gateway knows better than the default. */
  retryAfterSeconds?: number;
}

/**
 * A write was sent but its answer never came (connection lost, no reply in
 * time): it may or may not have been applied. Raised only once the write's
 * deadline has passed, so it cannot be applied any later.
 */
export class WriteOutcomeUnknownError extends DatabaseUnavailableError {}

/** Time allowed for COMMIT itself (the WAL flush) after the deadline check inside it. */
export const COMMIT_ALLOWANCE_MS = 250;

/** A FATAL ends the session; it can come after a COMMIT (a backend terminated right after it). */
function endedTheSession(error: unknown): boolean {
  const severity = (error as { severity?: unknown }).severity;
  return severity === 'FATAL' || severity === 'PANIC';
}

/** Refused at once while the connection gate is shut: nothing was sent. */
function notAttempted(retryAfterSeconds: number): DatabaseUnavailableError {
  const refused = new DatabaseUnavailableError('the database is down; not attempted');
  refused.retryAfterSeconds = retryAfterSeconds;
  return refused;
}

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
      if (isPermanentConnectError(error) || Date.now() + delay > deadline) throw error;
      await sleep(delay);
    }
  }
}

/** Why a server error means the gateway's set-up is wrong rather than the request. */
function misconfiguration(error: unknown): string | undefined {
  if (sqlstateOf(error) === '42501' && (error as { statementIndex?: number }).statementIndex === 0) {
    return explainCannotBecomeAuthenticated((error as Error).message);
  }
  return explainPermanentError(error);
}

export function createRequestRunner(options: RequestRunnerOptions): RequestRunner {
  // Off behind a pooler that loses them, from its first 26000/42P05 on.
  const statements = new NamedStatements(options.preparedStatements);
  const statementTimeout = `${options.statementTimeoutMs}ms`;
  const maxTasks = String(options.maxTasksPerUser);
  // A write's whole batch must commit within this much of being sent. A
  // pooler may hold a batch until it has a server (a wake: up to the
  // connection budget) before the statements' own time starts.
  const writeBudgetMs = options.statementTimeoutMs + options.connectRetryMs + 1_000;
  const gate = options.gate;
  const maxBytes = String(options.maxBytesPerUser ?? '');
  const maxIdempotencyKeys = String(options.maxIdempotencyKeysPerUser ?? '');
  const settingsFor = (identity: RequestIdentity, mode: AccessMode): Statement => ({
    ...SET_ROLE_AND_CLAIMS,
    values: [identity.claimsJson, statementTimeout, maxTasks, mode === 'read' ? 'on' : 'off', maxBytes, maxIdempotencyKeys],
  });

  // One list of a user at a time: the rest of the pool, and of the gateway's
  // CPU, stays for everyone else. A list waiting for the slot gets it when the
  // list before ends or is cut off at the statement timeout, so it waits up
  // to twice that.
  const listSlots = createUserSlots(1, 2 * options.statementTimeoutMs);

  async function stream(identity: RequestIdentity & { sub: string }, statement: Statement, collector: ChunkedCollector): Promise<Buffer | Readable> {
    const retryAfter = gate?.retryAfterSeconds();
    if (retryAfter !== undefined) throw notAttempted(retryAfter);
    const releaseSlot = await listSlots.acquire(identity.sub);
    // One connection budget per request, however many times the pooler says "no server yet".
    const deadline = Date.now() + options.connectRetryMs;
    for (;;) {
      let client: pg.PoolClient;
      try {
        client = await connectWithRetry(options.pool, Math.max(0, deadline - Date.now()));
      } catch (error) {
        releaseSlot();
        if (isPermanentConnectError(error)) throw new DatabaseMisconfiguredError(explainPermanentError(error)!, { cause: error });
        gate?.connectFailed();
        throw new DatabaseUnavailableError('could not connect to the database', { cause: error });
      }
      const transaction = new StreamedTransaction(statements.forNextRun([settingsFor(identity, 'read'), statement]), collector, {
        pieceBytes: DEFAULT_PIECE_BYTES,
        deadlineMs: options.statementTimeoutMs,
        maxBytesPerSecond: DEFAULT_MAX_BYTES_PER_SECOND,
      });
      // The transaction ends after the body was handed over, when the list has been sent.
      const ended = new Promise<void>((resolve) => {
        transaction.callback = (error) => {
          // A server error leaves the connection usable; anything else broke it (PgBouncer closes its own).
          if (error && (!isServerError(error) || poolerHadNoServer(error))) client.release(error);
          else client.release();
          resolve();
        };
      });
      client.query(transaction as unknown as pg.QueryConfig);
      try {
        const body = await transaction.started;
        void ended.then(releaseSlot);
        return body;
      } catch (error) {
        await ended;
        // Nothing was read yet: as for runAsUser, a lost prepared statement or a pooler without a server is retried.
        if (statements.lost(error)) continue;
        if (poolerHadNoServer(error) && Date.now() < deadline) {
          await sleep(250);
          continue;
        }
        releaseSlot();
        const misconfigured = isServerError(error) ? misconfiguration(error) : undefined;
        if (misconfigured) throw new DatabaseMisconfiguredError(misconfigured, { cause: error });
        if (isServerError(error) || error instanceof TypeError) throw error;
        throw new DatabaseUnavailableError('the database connection failed', { cause: error });
      }
    }
  }

  const runAsUser = async function runAsUser<Result>(
    identity: RequestIdentity,
    mode: AccessMode,
    statement: Statement,
    collector: RowCollector<Result>,
    // One connection budget per request, however many times the pooler says "no server yet".
    deadline = Date.now() + options.connectRetryMs,
  ): Promise<Result> {
    const retryAfter = gate?.retryAfterSeconds();
    if (retryAfter !== undefined) throw notAttempted(retryAfter);
    let client: pg.PoolClient;
    try {
      client = await connectWithRetry(options.pool, Math.max(0, deadline - Date.now()));
    } catch (error) {
      if (isPermanentConnectError(error)) throw new DatabaseMisconfiguredError(explainPermanentError(error)!, { cause: error });
      gate?.connectFailed();
      throw new DatabaseUnavailableError('could not connect to the database', { cause: error });
    }
    const roleAndClaims = settingsFor(identity, mode);
    const progress: BatchProgress = { sent: false };
    let writeDeadlineMs: number | undefined;
    try {
      let result: Result;
      if (mode === 'read') {
        result = await statements.run(client, [roleAndClaims, statement], collector, { progress });
      } else {
        const writeBy = await writeDeadline(client, writeBudgetMs);
        writeDeadlineMs = writeBy.gatewayMs;
        result = await statements.run(client, [roleAndClaims, writeBy.statement, statement], collector, {
          progress,
          // The 503 for a write that got no answer never comes before its deadline.
          queryTimeoutMs: writeDeadlineMs + COMMIT_ALLOWANCE_MS - gatewayNow(),
        });
      }
      client.release();
      return result;
    } catch (error) {
      if (poolerHadNoServer(error) && Date.now() < deadline) {
        client.release(error as Error); // PgBouncer closes it
        await sleep(250);
        return runAsUser(identity, mode, statement, collector, deadline);
      }
      // An ERROR rolled the transaction back; a FATAL is like a lost connection.
      if (isServerError(error) && !endedTheSession(error)) {
        client.release();
        const misconfigured = misconfiguration(error);
        if (misconfigured) throw new DatabaseMisconfiguredError(misconfigured, { cause: error });
        throw error; // the statement's own error (42501, PT404, ...): the transaction rolled back
      }
      // Anything else broke the connection (lost, timed out): discard it.
      client.release(error as Error);
      // A TypeError is a value the gateway could not send: a bug, not an outage.
      if (error instanceof TypeError) throw error;
      if (isServerError(error) && !progress.sent) throw error; // e.g. 57P01 before anything of the write was sent
      if (progress.sent && writeDeadlineMs !== undefined) {
        // The write may still be in transit: answer only once it can no longer commit.
        const wait = writeDeadlineMs + COMMIT_ALLOWANCE_MS - gatewayNow();
        if (wait > 0) await sleep(wait);
        throw new WriteOutcomeUnknownError('the write was sent but its outcome is unknown', { cause: error });
      }
      if (isServerError(error)) throw error; // a read's FATAL: its SQLSTATE says what happened
      throw new DatabaseUnavailableError('the database connection failed', { cause: error });
    }
  };
  return Object.assign(runAsUser, { stream });
}
