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
import { targetOf } from './db/connection-errors.js';
import { checkDatabase, expectedMigrationVersions } from './db/database-checks.js';
import { checkListenAddress, listenError } from './listen-address.js';
import { dataDirError, missingBinaryError, OperatorError } from './operator-error.js';

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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An operator's view of a start-up error under DATA_DIR or of a missing program, else the error itself. */
function asOperatorError(error: unknown, config: Config): unknown {
  return dataDirError(error, config.dataDir) ?? missingBinaryError(error) ?? error;
}

/**
 * Runs the database checks until they pass, retrying a database that does
 * not answer for the connection retry budget; anything else fails at once.
 */
async function waitForUsableDatabase(pool: pg.Pool, appUrl: string, retryMs: number): Promise<void> {
  const expected = expectedMigrationVersions();
  const target = targetOf(appUrl);
  const deadline = Date.now() + retryMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 1_000)) {
    const failure = await checkDatabase(pool, expected, target);
    if (!failure) return;
    if (!failure.transient || Date.now() + delay > deadline) throw new OperatorError(failure.message);
    await sleep(delay);
  }
}

export async function startServer(config: Config): Promise<RunningServer> {
  // Before any slow work: a port in use is reported at once, in one line.
  await checkListenAddress(config.host, config.port);

  let jwtSecret = config.jwtSecret;
  let devSecretFile: string | undefined;
  if (!jwtSecret && !config.jwksUrl) {
    // Only reachable on the embedded default outside production: config
    // refuses DATABASE_URL or NODE_ENV=production without keys. Read before
    // the database starts, so a planted secret is refused before anything runs.
    try {
      jwtSecret = await readOrCreateDevSecret(config.dataDir);
    } catch (error) {
      throw asOperatorError(error, config);
    }
    devSecretFile = devSecretPath(config.dataDir);
  }

  let database: Database;
  try {
    database = config.databaseUrl
      ? { appUrl: config.databaseUrl, description: redactUrl(config.databaseUrl), stop: async () => {} }
      : await openEmbeddedDatabase(config.dataDir);
  } catch (error) {
    throw asOperatorError(error, config);
  }

  const verify = createTokenVerifier({
    secret: jwtSecret,
    jwksUrl: config.jwksUrl,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    clockToleranceSeconds: config.jwtClockToleranceSeconds,
  });
  const pool = createPool(database.appUrl, config.pool);
  try {
    await waitForUsableDatabase(pool, database.appUrl, config.pool.connectRetryMs);
  } catch (error) {
    await pool.end();
    await database.stop();
    throw error;
  }
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
  const app = await buildApp({ drain, pool, runAsUser, verify, corsOrigins: config.corsOrigins, logLevel: config.logLevel, metrics: config.metrics, cursorSecret, timeouts: config.http });
  if (cursorSecret === undefined) {
    app.log.warn('neither CURSOR_SECRET nor JWT_SECRET is set: list page cursors work only on this process; set CURSOR_SECRET when running replicas');
  }

  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    gate.close();
    await pool.end();
    await database.stop();
    throw listenError(error, config.host, config.port) ?? error;
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
