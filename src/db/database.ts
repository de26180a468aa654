// Where the API's data lives: the PostgreSQL at DATABASE_URL, or, when none is
// given, an embedded cluster in DATA_DIR that is started, migrated and stopped
// with the process.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { readOrCreateSecretFile } from '../secret-file.js';
import { startEmbeddedCluster } from './embedded-cluster.js';
import { migrate } from './migrate.js';
import { connectClient } from './connection-settings.js';

export const EMBEDDED_DATABASE_NAME = 'task_api';

export interface Database {
  /** URL the gateway serves requests with (role authenticator). */
  appUrl: string;
  /** Owner URL, known only for the embedded database. */
  ownerUrl?: string;
  /** Human-readable description for the start-up banner (no password). */
  description: string;
  stop(): Promise<void>;
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export function withUser(url: string, user: string, password?: string): string {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password ? encodeURIComponent(password) : '';
  return parsed.toString();
}

export function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

/** Gives authenticator a password so it can log in under password authentication. */
export async function setAuthenticatorPassword(ownerUrl: string, password: string): Promise<void> {
  const client = await connectClient(ownerUrl);
  try {
    // ALTER ROLE takes no bound parameters; escapeLiteral is the driver's quoting.
    await client.query(`alter role authenticator with password ${client.escapeLiteral(password)}`);
  } finally {
    await client.end();
  }
}

/**
 * Migrates a database given an owner URL and returns the URL authenticator
 * logs in with. Shared by the embedded default and the test harness.
 */
export async function prepareDatabase(ownerUrl: string, authenticatorPassword: string): Promise<string> {
  await migrate(ownerUrl);
  await setAuthenticatorPassword(ownerUrl, authenticatorPassword);
  return withUser(ownerUrl, 'authenticator', authenticatorPassword);
}

export async function openEmbeddedDatabase(dataDir: string): Promise<Database> {
  const root = path.resolve(dataDir);
  await mkdir(root, { recursive: true, mode: 0o755 });
  const cluster = await startEmbeddedCluster({
    clusterDir: path.join(root, 'pg'),
    logFile: path.join(root, 'postgres.log'),
    port: process.env.EMBEDDED_PG_PORT ? Number(process.env.EMBEDDED_PG_PORT) : undefined,
  });
  try {
    const ownerUrl = withDatabase(cluster.superuserUrl, EMBEDDED_DATABASE_NAME);
    const password = await readOrCreateSecretFile(path.join(root, 'authenticator-password'), 24);
    const appUrl = await prepareDatabase(ownerUrl, password);
    return {
      appUrl,
      ownerUrl,
      description: `embedded PostgreSQL in ${root} (${redactUrl(appUrl)})`,
      stop: () => cluster.stop(),
    };
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}
