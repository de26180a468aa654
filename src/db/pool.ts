// The gateway's connection pool (role authenticator).
import pg from 'pg';
import type { PoolSettings } from '../config.js';
import { connectionSettings } from './connection-settings.js';
import { createConnectionGate, type ConnectionGate } from './connection-gate.js';
import { RawRowClient } from './raw-row-client.js';

export function createPool(connectionString: string, settings: PoolSettings): pg.Pool {
  // sslmode and channel_binding as libpq reads them (connection-settings.ts).
  const { config, Client } = connectionSettings(connectionString, RawRowClient);
  const pool = new pg.Pool({
    ...config,
    Client,
    max: settings.max,
    connectionTimeoutMillis: settings.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    // The server-side statement_timeout is set per transaction (start-up
    // parameters do not survive transaction-mode poolers); this client-side
    // limit catches a server that stops answering altogether. A pooler holds
    // a batch until it has a server connection, which during a wake takes as
    // long as a connection set-up: that budget is part of the limit.
    query_timeout: settings.statementTimeoutMs + settings.connectRetryMs + 2_000,
    application_name: 'task-api',
    keepAlive: true,
  });
  // A connection that dies must not crash the process: while idle the pool
  // discards it; while checked out the request's queries fail with the cause
  // (answered with 503) and the connection is released as broken.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** The fail-fast gate of this pool: its probe opens a connection and runs one statement. */
export function createPoolGate(pool: pg.Pool, onChange?: (shut: boolean) => void): ConnectionGate {
  return createConnectionGate({
    onChange,
    async probe() {
      const client = await pool.connect();
      try {
        await client.query('select 1');
        client.release();
      } catch (error) {
        client.release(error as Error);
        throw error;
      }
    },
  });
}
