// Builds the real application against the test database for Fastify inject:
// a real pool (role authenticator), the real token verifier, real SQL.
import { Writable } from 'node:stream';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type pg from 'pg';
import { expect, inject } from 'vitest';
import { buildApp } from '../../src/app.js';
import { createTokenVerifier, type TokenVerifierOptions } from '../../src/auth/token-verifier.js';
import type { HttpTimeouts, PoolSettings } from '../../src/config.js';
import { createPool } from '../../src/db/pool.js';
import { createRequestRunner } from '../../src/db/request-transaction.js';
import { mintHs256Token } from '../../src/dev-secret.js';
import type { DrainState } from '../../src/http/drain.js';

export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-bytes-long';

export interface TestApp {
  app: FastifyInstance;
  pool: pg.Pool;
  /** Every log line the app wrote, parsed. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

interface TestAppOptions {
  verifier?: Partial<TokenVerifierOptions>;
  corsOrigins?: string[];
  appUrl?: string;
  maxTasksPerUser?: number;
  /** Named prepared statements; default from TEST_PREPARED_STATEMENTS (on unless "false"). */
  preparedStatements?: boolean;
  /** The pool's settings (connection budget included); the tests' short ones unless given. */
  poolSettings?: PoolSettings;
  /** The shutdown phase, for tests of draining. */
  drain?: DrainState;
  maxBytesPerUser?: number;
  maxIdempotencyKeysPerUser?: number;
  /** Instances behind app.inject(); default TEST_REPLICAS. 1 for what one process remembers (its JWKS cache). */
  replicas?: number;
  /** HTTP timeouts of the app (for tests that listen on a real socket). */
  timeouts?: HttpTimeouts;
  logLevel?: string;
}

/** One gateway instance: its own pool, verifier and caches, like one process. */
async function createInstance(options: TestAppOptions, logs: Record<string, unknown>[]) {
  const poolSettings = options.poolSettings ?? { max: 8, connectTimeoutMs: 5_000, connectRetryMs: 1_000, statementTimeoutMs: 5_000 };
  const pool = createPool(options.appUrl ?? inject('appUrl'), poolSettings);
  const logStream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  const verify = createTokenVerifier({ secret: TEST_JWT_SECRET, clockToleranceSeconds: 5, ...options.verifier });
  const runAsUser = createRequestRunner({
    pool,
    preparedStatements: options.preparedStatements ?? process.env.TEST_PREPARED_STATEMENTS !== 'false',
    statementTimeoutMs: poolSettings.statementTimeoutMs,
    connectRetryMs: poolSettings.connectRetryMs,
    maxTasksPerUser: options.maxTasksPerUser ?? 10_000,
    maxBytesPerUser: options.maxBytesPerUser,
    maxIdempotencyKeysPerUser: options.maxIdempotencyKeysPerUser,
  });
  const app = await buildApp({
    pool,
    runAsUser,
    verify,
    corsOrigins: options.corsOrigins ?? [],
    logLevel: options.logLevel ?? 'info',
    logStream,
    // Shared by every replica, as JWT_SECRET is in production.
    cursorSecret: TEST_JWT_SECRET,
    drain: options.drain,
    timeouts: options.timeouts,
  });
  await app.ready();
  return { app, pool };
}

/**
 * The application as the HTTP tests see it. With TEST_REPLICAS=N (N > 1),
 * N independent instances share the database and app.inject() sends each
 * request to the next one, round-robin, as a load balancer would.
 */
export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const logs: Record<string, unknown>[] = [];
  const replicas = options.replicas ?? Math.max(1, Number(process.env.TEST_REPLICAS ?? 1));
  const instances = await Promise.all(Array.from({ length: replicas }, () => createInstance(options, logs)));
  const [primary] = instances;
  if (replicas > 1) {
    const injects = instances.map(({ app }) => app.inject.bind(app));
    let next = 0;
    primary.app.inject = ((...args: Parameters<FastifyInstance['inject']>) =>
      (injects[next++ % injects.length] as (...a: typeof args) => unknown)(...args)) as FastifyInstance['inject'];
  }
  return {
    app: primary.app,
    pool: primary.pool,
    logs,
    async close() {
      for (const { app, pool } of instances) {
        await app.close();
        await pool.end();
      }
    },
  };
}

export function tokenFor(sub: string, options: { expiresIn?: string; claims?: Record<string, unknown> } = {}) {
  return mintHs256Token({ secret: TEST_JWT_SECRET, sub, expiresIn: options.expiresIn, extraClaims: options.claims });
}

/** A fresh user id, so tests never see each other's tasks. */
export function newUser(label = 'user'): string {
  return `${label}-${Math.random().toString(36).slice(2, 10)}`;
}

/** A fresh user with the Authorization header of a valid token. */
export interface TestUser {
  sub: string;
  headers: Record<string, string>;
}

export async function testUser(label: string): Promise<TestUser> {
  const sub = newUser(label);
  return { sub, headers: bearer(await tokenFor(sub)) };
}

export function bearer(token: string) {
  return { authorization: `Bearer ${token}` };
}

/** Asserts an RFC 9457 problem response (and its `type`, when given) and returns its body. */
export function expectProblem(response: LightMyRequestResponse, status: number, type?: string) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = response.json();
  expect(body).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  if (type) expect(body.type).toBe(type);
  return body;
}

export function json(response: LightMyRequestResponse) {
  return response.json() as Record<string, any>;
}
