// Unauthenticated probes for orchestrators and load balancers. Readiness runs
// the start-up checks of the database (src/db/database-checks.ts), so a
// gateway that could never serve is not reported ready.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type pg from 'pg';
import { targetOf } from '../../db/connection-errors.js';
import { checkDatabase, expectedMigrationVersions, type CheckFailure } from '../../db/database-checks.js';
import { shuttingDown, type DrainState } from '../drain.js';
import { ProblemError, RETRY_AFTER_SECONDS } from '../problem.js';
import { problemResponses } from './task-route-schemas.js';

const READY_TIMEOUT_MS = 2_000;
/** Probes arriving within this long share one run of the checks (a flood of probes costs the database nothing more). */
const READY_CACHE_MS = 1_000;

type Readiness = () => Promise<CheckFailure | undefined>;

function createReadiness(pool: pg.Pool, log: FastifyBaseLogger): Readiness {
  const expected = expectedMigrationVersions();
  const target = targetOf((pool as pg.Pool & { options: { connectionString?: string } }).options.connectionString ?? '');
  let last: { at: number; result: Promise<CheckFailure | undefined> } | undefined;
  let reported: string | undefined;

  const run = async (): Promise<CheckFailure | undefined> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<CheckFailure>((resolve) => {
      timer = setTimeout(
        () => resolve({ check: 'connect', transient: true, message: `The database did not answer within ${READY_TIMEOUT_MS} ms.` }),
        READY_TIMEOUT_MS,
      );
    });
    try {
      const failure = await Promise.race([checkDatabase(pool, expected, target), timeout]);
      // Log changes only: probes every few seconds must not flood the log.
      const state = failure ? `${failure.check}: ${failure.message}` : undefined;
      if (state !== reported) {
        if (!failure) log.info('readiness: every database check passes again');
        else if (failure.transient) log.warn({ check: failure.check }, `readiness check "${failure.check}" failed: ${failure.message}`);
        else log.error({ check: failure.check }, `readiness check "${failure.check}" failed: ${failure.message}`);
        reported = state;
      }
      return failure;
    } finally {
      clearTimeout(timer);
    }
  };

  return () => {
    const now = Date.now();
    if (!last || now - last.at >= READY_CACHE_MS) last = { at: now, result: run() };
    return last.result;
  };
}

const statusBody = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string' } },
} as const;

export async function healthRoutes(app: FastifyInstance, options: { pool: pg.Pool; drain?: DrainState }) {
  const readiness = createReadiness(options.pool, app.log);

  app.get(
    '/health/live',
    { schema: { summary: 'Liveness: 200 while the process runs', tags: ['health'], response: { 200: statusBody } } },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/health/ready',
    {
      schema: {
        summary: 'Readiness: 200 when the database answers, 503 otherwise',
        tags: ['health'],
        response: { 200: statusBody, ...problemResponses(503) },
      },
    },
    async () => {
      // Not ready from the moment shutdown begins, so a load balancer stops sending traffic first.
      if (options.drain?.stopping) throw shuttingDown();
      const failure = await readiness();
      if (failure) {
        // The check's name only: the log holds the cause and the fix (role
        // and host names are not for unauthenticated callers).
        const detail = failure.transient
          ? `The database check "${failure.check}" failed: the database does not answer; retry shortly.`
          : `The database check "${failure.check}" failed; the gateway's log says why and how to fix it.`;
        throw new ProblemError('unavailable', detail, failure.transient ? { headers: { 'Retry-After': RETRY_AFTER_SECONDS } } : {});
      }
      return { status: 'ready' };
    },
  );
}
