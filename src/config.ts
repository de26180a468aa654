// The process's configuration, read once from the environment and validated
// up front: a misconfigured server refuses to start with a message naming the
// variable, rather than failing on the first request.
import { ConnectionUrlError, connectionSettings } from './db/connection-settings.js';

export interface PoolSettings {
  /** Most connections the gateway opens. */
  max: number;
  /** How long one attempt to get a connection (a free one, or a new one opened) may take. */
  connectTimeoutMs: number;
  /** For how long failed connection attempts are retried, with backoff, before a 503. */
  connectRetryMs: number;
  /** Longest a statement may run before PostgreSQL cancels it. */
  statementTimeoutMs: number;
}

export interface HttpTimeouts {
  /** Longest a client may take to send a whole request (headers and body). */
  requestTimeoutMs: number;
  /** Longest a client may take to send a request's headers. */
  headersTimeoutMs: number;
  /** How long an idle keep-alive connection is kept open. */
  keepAliveTimeoutMs: number;
}

export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = { requestTimeoutMs: 30_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 72_000 };

export interface Config {
  port: number;
  host: string;
  /** Unset: embedded PostgreSQL in dataDir. */
  databaseUrl?: string;
  dataDir: string;
  jwtSecret?: string;
  /** Seals list page cursors; defaults to JWT_SECRET. */
  cursorSecret?: string;
  jwksUrl?: string;
  jwtIssuer?: string;
  jwtAudience?: string[];
  jwtClockToleranceSeconds: number;
  corsOrigins: string[];
  maxTasksPerUser: number;
  /** Stored bytes per user: titles, descriptions and idempotency records together. */
  maxBytesPerUser: number;
  /** Idempotency-Keys a user may have live (24 hours each). */
  maxIdempotencyKeysPerUser: number;
  pool: PoolSettings;
  logLevel: string;
  /** Use named prepared statements (off behind transaction-mode poolers that cannot keep them). */
  preparedStatements: boolean;
  /** Serve Prometheus metrics at GET /metrics (METRICS=true). */
  metrics: boolean;
  /** After SIGTERM: how long requests are still served (readiness already 503) before the server stops accepting. */
  shutdownGraceMs: number;
  http: HttpTimeouts;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

type Env = Record<string, string | undefined>;

function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number, problems: string[]) {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  // Plain decimal digits only: 0x1F40, 8e3 and 8000.0 are mistakes, not 8000.
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}")`);
    return fallback;
  }
  return value;
}

function flag(env: Env, name: string, fallback: boolean, problems: string[]) {
  const raw = text(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  problems.push(`${name} must be true or false (got "${raw}")`);
  return fallback;
}

function list(env: Env, name: string): string[] {
  return (text(env, name) ?? '').split(',').map((item) => item.trim()).filter(Boolean);
}

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];

  const databaseUrl = text(env, 'DATABASE_URL');
  if (databaseUrl) {
    try {
      const protocol = new URL(databaseUrl).protocol;
      if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
        problems.push('DATABASE_URL must be a postgres:// or postgresql:// URL');
      } else {
        connectionSettings(databaseUrl); // sslmode and channel_binding it cannot honour
      }
    } catch (error) {
      problems.push(error instanceof ConnectionUrlError ? `DATABASE_URL: ${error.message}` : 'DATABASE_URL is not a valid URL');
    }
  }

  const jwtSecret = text(env, 'JWT_SECRET');
  if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret) < 32) {
    problems.push('JWT_SECRET must be at least 32 bytes (HS256 needs a key as long as its hash)');
  }

  const cursorSecret = text(env, 'CURSOR_SECRET');
  if (cursorSecret !== undefined && Buffer.byteLength(cursorSecret) < 32) {
    problems.push('CURSOR_SECRET must be at least 32 bytes');
  }

  const jwksUrl = text(env, 'JWKS_URL');
  if (jwksUrl !== undefined) {
    try {
      const { protocol } = new URL(jwksUrl);
      if (protocol !== 'https:' && protocol !== 'http:') problems.push('JWKS_URL must be an http(s) URL');
    } catch {
      problems.push('JWKS_URL is not a valid URL');
    }
  }

  if (databaseUrl && !jwtSecret && !jwksUrl) {
    problems.push(
      'DATABASE_URL is set but neither JWT_SECRET nor JWKS_URL is: refusing to start without a way to verify tokens',
    );
  }

  if (!databaseUrl && !jwtSecret && !jwksUrl && text(env, 'NODE_ENV') === 'production') {
    problems.push(
      'NODE_ENV=production but neither JWT_SECRET nor JWKS_URL is set: the embedded default\'s development secret is never used in production',
    );
  }

  const corsOrigins = list(env, 'CORS_ORIGINS');
  for (const origin of corsOrigins) {
    try {
      if (new URL(origin).origin !== origin) problems.push(`CORS_ORIGINS entry "${origin}" must be a bare origin like https://app.example.com`);
    } catch {
      problems.push(`CORS_ORIGINS entry "${origin}" is not a URL`);
    }
  }

  const audience = list(env, 'JWT_AUDIENCE');
  const config: Config = {
    port: integer(env, 'PORT', 8000, 0, 65535, problems),
    host: text(env, 'HOST') ?? '127.0.0.1',
    databaseUrl,
    dataDir: text(env, 'DATA_DIR') ?? './.data',
    jwtSecret,
    cursorSecret,
    jwksUrl,
    jwtIssuer: text(env, 'JWT_ISSUER'),
    jwtAudience: audience.length ? audience : undefined,
    jwtClockToleranceSeconds: integer(env, 'JWT_CLOCK_TOLERANCE', 5, 0, 300, problems),
    corsOrigins,
    maxTasksPerUser: integer(env, 'MAX_TASKS_PER_USER', 10_000, 1, 10_000_000, problems),
    maxBytesPerUser: integer(env, 'MAX_BYTES_PER_USER', 16 * 1024 * 1024, 1024, 1024 ** 4, problems),
    maxIdempotencyKeysPerUser: integer(env, 'MAX_IDEMPOTENCY_KEYS_PER_USER', 10_000, 1, 10_000_000, problems),
    pool: {
      max: integer(env, 'DB_POOL_MAX', 10, 1, 1000, problems),
      connectTimeoutMs: integer(env, 'DB_CONNECT_TIMEOUT_MS', 10_000, 100, 120_000, problems),
      // A wake behind a running PgBouncer: its server_login_retry (15 s) after
      // a failed server login, plus the wake (docs/deploy-neon.md).
      connectRetryMs: integer(env, 'DB_CONNECT_RETRY_MS', 20_000, 0, 120_000, problems),
      statementTimeoutMs: integer(env, 'DB_STATEMENT_TIMEOUT_MS', 5_000, 100, 600_000, problems),
    },
    logLevel: text(env, 'LOG_LEVEL') ?? 'info',
    preparedStatements: flag(env, 'DB_PREPARED_STATEMENTS', true, problems),
    metrics: flag(env, 'METRICS', false, problems),
    shutdownGraceMs: integer(env, 'SHUTDOWN_GRACE_MS', 5_000, 0, 600_000, problems),
    http: {
      requestTimeoutMs: integer(env, 'HTTP_REQUEST_TIMEOUT_MS', DEFAULT_HTTP_TIMEOUTS.requestTimeoutMs, 100, 3_600_000, problems),
      headersTimeoutMs: integer(env, 'HTTP_HEADERS_TIMEOUT_MS', DEFAULT_HTTP_TIMEOUTS.headersTimeoutMs, 100, 3_600_000, problems),
      keepAliveTimeoutMs: integer(env, 'HTTP_KEEP_ALIVE_TIMEOUT_MS', DEFAULT_HTTP_TIMEOUTS.keepAliveTimeoutMs, 100, 3_600_000, problems),
    },
  };
  if (config.http.headersTimeoutMs > config.http.requestTimeoutMs) {
    problems.push('HTTP_HEADERS_TIMEOUT_MS must not exceed HTTP_REQUEST_TIMEOUT_MS (the headers are part of the request)');
  }

  if (problems.length) throw new ConfigError(problems);
  return config;
}
