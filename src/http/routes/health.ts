// Unauthenticated probes for orchestrators and load balancers.
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { shuttingDown, type DrainState } from '../drain.js';
import { unavailable } from '../error-mapping.js';
import { problemResponses } from './task-route-schemas.js';

const READY_TIMEOUT_MS = 2_000;

async function databaseAnswers(pool: pg.Pool): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), READY_TIMEOUT_MS);
  });
  const probe = pool.query('select 1').then(
    () => true,
    () => false,
  );
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const statusBody = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string' } },
} as const;

export async function healthRoutes(app: FastifyInstance, options: { pool: pg.Pool; drain?: DrainState }) {
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
      if (!(await databaseAnswers(options.pool))) throw unavailable('The database does not answer.');
      return { status: 'ready' };
    },
  );
}
