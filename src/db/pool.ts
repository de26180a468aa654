// The gateway's connection pool (role authenticator) and how PostgreSQL
// values are turned into JSON-ready values.
import pg from 'pg';
import type { PoolSettings } from '../config.js';

const TIMESTAMPTZ_OID = 1184;
const UTC_TIMESTAMP = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00$/;

/**
 * timestamptz as RFC 3339 UTC text with milliseconds, e.g.
 * 2026-11-27T13:00:00.000Z. The session time zone is UTC (set on the role and
 * per transaction), so this is string surgery rather than Date parsing.
 */
export function timestampToRfc3339(value: string): string {
  const match = UTC_TIMESTAMP.exec(value);
  if (!match) return new Date(value).toISOString();
  const fraction = (match[3] ?? '').padEnd(3, '0').slice(0, 3);
  return `${match[1]}T${match[2]}.${fraction}Z`;
}

const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === TIMESTAMPTZ_OID) return timestampToRfc3339;
    return pg.types.getTypeParser(oid, format);
  },
};

export function createPool(connectionString: string, settings: PoolSettings): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: settings.max,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    // The server-side statement_timeout is set per transaction (start-up
    // parameters do not survive transaction-mode poolers); this client-side
    // limit catches a server that stops answering altogether.
    query_timeout: settings.statementTimeoutMs + 2_000,
    application_name: 'task-api',
    // Statements are written without waiting for the previous answer, so a
    // request's transaction costs one round trip (see request-transaction.ts).
    pipeline: process.env.PG_PIPELINE !== 'false',
    keepAlive: true,
    types,
  });
  // A connection that dies must not crash the process: while idle the pool
  // discards it; while checked out the request's queries fail with the cause
  // (answered with 503) and the connection is released as broken.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}
