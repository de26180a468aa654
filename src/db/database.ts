// Where the API's data lives: the PostgreSQL at DATABASE_URL, or, when none is
// given, an embedded cluster in DATA_DIR that is started, migrated and stopped
// with the process.
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { DataDirError, prepareDataDir } from '../data-dir.js';
import { readOrCreateSecretFile } from '../secret-file.js';
import { DataDirInUseError, lockDataDir } from './data-dir-lock.js';
import { runningClusterUrl, startEmbeddedCluster, type EmbeddedCluster } from './embedded-cluster.js';
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

const STARTUP_SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;

/** Start-up progress, on stderr: a first start takes a few seconds. */
function step(message: string) {
  process.stderr.write(`task-api: ${message}\n`);
}

/** Temporary files of secrets (see secret-file.ts) a killed process left behind. */
async function removeUnfinishedSecrets(root: string) {
  for (const name of await readdir(root)) {
    if (/^\.(superuser-password|authenticator-password)\.[0-9a-f]{12}$/.test(name)) await rm(path.join(root, name), { force: true });
  }
}

/**
 * Starts (initialising on first use) and migrates the embedded cluster in
 * DATA_DIR, owning DATA_DIR until stop(). A second process on the same
 * DATA_DIR gets DataDirInUseError; a signal during the start stops whatever
 * was started, releases DATA_DIR and exits.
 */
export async function openEmbeddedDatabase(dataDir: string): Promise<Database> {
  const root = await prepareDataDir(dataDir);
  const lock = lockDataDir(root);
  await removeUnfinishedSecrets(root);
  const abort = new AbortController();
  let exitCode: number | undefined;
  const onSignal = (signal: keyof typeof STARTUP_SIGNALS) => {
    exitCode ??= 128 + STARTUP_SIGNALS[signal];
    abort.abort(new Error(`start-up interrupted by ${signal}`));
  };
  const signals = Object.keys(STARTUP_SIGNALS) as (keyof typeof STARTUP_SIGNALS)[];
  for (const signal of signals) process.on(signal, onSignal);

  let cluster: EmbeddedCluster | undefined;
  try {
    cluster = await startEmbeddedCluster({
      clusterDir: path.join(root, 'pg'),
      logFile: path.join(root, 'postgres.log'),
      port: process.env.EMBEDDED_PG_PORT ? Number(process.env.EMBEDDED_PG_PORT) : undefined,
      signal: abort.signal,
      onStep: (name) => step(name === 'initdb' ? `initialising PostgreSQL in ${root} (first start)` : 'starting PostgreSQL'),
    });
    const running = cluster;
    abort.signal.addEventListener('abort', () => void running.stop(), { once: true });
    const ownerUrl = withDatabase(cluster.superuserUrl, EMBEDDED_DATABASE_NAME);
    const password = readOrCreateSecretFile(path.join(root, 'authenticator-password'), 24);
    step('applying migrations');
    // Each migration, and the policies, apply in a transaction and are
    // skipped once applied: an interrupted run is finished by the next start.
    const appUrl = await prepareDatabase(ownerUrl, password);
    if (abort.signal.aborted) throw abort.signal.reason;
    return {
      appUrl,
      ownerUrl,
      description: `embedded PostgreSQL in ${root} (${redactUrl(appUrl)})`,
      stop: async () => {
        await running.stop();
        lock.release();
      },
    };
  } catch (error) {
    await cluster?.stop();
    lock.release();
    if (exitCode !== undefined) process.exit(exitCode);
    throw error;
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
  }
}

/**
 * The embedded database in DATA_DIR for a tool (db:audit): the running
 * cluster when a live server owns DATA_DIR, used without disturbing it;
 * otherwise started for the tool and stopped after.
 */
export async function openEmbeddedDatabaseShared(dataDir: string): Promise<Database> {
  try {
    return await openEmbeddedDatabase(dataDir);
  } catch (error) {
    if (!(error instanceof DataDirInUseError)) throw error;
    const clusterUrl = await runningClusterUrl(path.join(error.dataDir, 'pg')).catch(() => {
      throw new DataDirError(`${error.message} and its database is not up yet: try again in a moment`);
    });
    const ownerUrl = withDatabase(clusterUrl, EMBEDDED_DATABASE_NAME);
    return {
      appUrl: ownerUrl,
      ownerUrl,
      description: `embedded PostgreSQL of the server running in ${error.dataDir} (pid ${error.pid})`,
      stop: async () => {},
    };
  }
}
