// Assembles a running server from a configuration: database (embedded or
// DATABASE_URL), token verifier, pool and HTTP app. Used by `npm start` and
// by the tests that run real processes.
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { createTokenVerifier } from './auth/token-verifier.js';
import type { Config } from './config.js';
import { openEmbeddedDatabase, redactUrl, type Database } from './db/database.js';
import { createRequestRunner } from './db/request-transaction.js';
import { createPool, createPoolGate } from './db/pool.js';
import { buildApp } from './app.js';
import { DrainState } from './http/drain.js';
import { devSecretPath, readOrCreateDevSecret } from './dev-secret.js';

export interface RunningServer {
  app: FastifyInstance;
  pool: pg.Pool;
  database: Database;
  url: string;
  /** Where the development secret lives, when one was generated. */
  devSecretFile?: string;
  /**
   * Drains, then stops: readiness turns 503 at once, requests are served for
   * graceMs more, then no new connections, in-flight requests finish, and
   * the database is released.
   */
  close(graceMs?: number): Promise<void>;
}

export async function startServer(config: Config): Promise<RunningServer> {
  let jwtSecret = config.jwtSecret;
  let devSecretFile: string | undefined;
  if (!jwtSecret && !config.jwksUrl) {
    // Only reachable on the embedded default outside production: config
    // refuses DATABASE_URL or NODE_ENV=production without keys. Read before
    // the database starts, so a planted secret is refused before anything runs.
    jwtSecret = await readOrCreateDevSecret(config.dataDir);
    devSecretFile = devSecretPath(config.dataDir);
  }

  const database: Database = config.databaseUrl
    ? { appUrl: config.databaseUrl, description: redactUrl(config.databaseUrl), stop: async () => {} }
    : await openEmbeddedDatabase(config.dataDir);

  const verify = createTokenVerifier({
    secret: jwtSecret,
    jwksUrl: config.jwksUrl,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    clockToleranceSeconds: config.jwtClockToleranceSeconds,
  });
  const pool = createPool(database.appUrl, config.pool);
  const gate = createPoolGate(pool, (shut) => {
    if (shut) app.log.warn('database unreachable for the whole connection-retry budget: refusing requests at once until a probe connects');
    else app.log.info('database reachable again: serving requests');
  });
  const runAsUser = createRequestRunner({
    gate,
    pool,
    preparedStatements: config.preparedStatements,
    statementTimeoutMs: config.pool.statementTimeoutMs,
    connectRetryMs: config.pool.connectRetryMs,
    maxTasksPerUser: config.maxTasksPerUser,
    maxBytesPerUser: config.maxBytesPerUser,
    maxIdempotencyKeysPerUser: config.maxIdempotencyKeysPerUser,
  });
  const cursorSecret = config.cursorSecret ?? jwtSecret;
  const drain = new DrainState();
  const app = await buildApp({ drain, pool, runAsUser, verify, corsOrigins: config.corsOrigins, logLevel: config.logLevel, metrics: config.metrics, cursorSecret });
  if (cursorSecret === undefined) {
    app.log.warn('neither CURSOR_SECRET nor JWT_SECRET is set: list page cursors work only on this process; set CURSOR_SECRET when running replicas');
  }

  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    gate.close();
    await pool.end();
    await database.stop();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;

  let closing: Promise<void> | undefined;
  return {
    app,
    pool,
    database,
    url: `http://${host}:${port}`,
    devSecretFile,
    close(graceMs = 0) {
      // Drain for graceMs, stop accepting, let in-flight requests finish,
      // then release the database connections and stop the embedded cluster.
      closing ??= (async () => {
        drain.phase = 'draining';
        if (graceMs > 0) await new Promise((resolve) => setTimeout(resolve, graceMs));
        drain.phase = 'closing';
        // Keep-alive connections whose request finishes during the drain
        // would hold the server open until their idle timeout: close each
        // as soon as it goes idle.
        const closeIdle = setInterval(() => app.server.closeIdleConnections(), 50);
        try {
          await app.close();
        } finally {
          clearInterval(closeIdle);
        }
        gate.close();
        await pool.end();
        await database.stop();
        (app.log as { flush?: () => void }).flush?.();
      })();
      return closing;
    },
  };
}
