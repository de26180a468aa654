// A private PostgreSQL cluster for tests that need one of their own: roles are
// cluster-wide, so scenarios about which roles exist (or how the server
// authenticates) cannot share the main test server. Debian's binaries of the
// wanted major version when installed, else the embedded ones.
// Always password (SCRAM) authentication, so passwords are really checked;
// optionally TLS only (hostssl), as Neon serves connections.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../src/db/embedded-cluster.js';
import { loadBinaries, osUserForPostgres } from '../../src/db/postgres-binaries.js';

const execFileAsync = promisify(execFile);

export interface PrivateCluster {
  superuserUrl: string;
  major: number;
  dir: string;
  port: number;
  stop(): Promise<void>;
  /** Stops the server (fast: -m immediate), keeping its data; startServer brings it back on the same port. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
}

export interface PrivateClusterOptions {
  /** Server certificate and key (PEM): ssl = on, and only hostssl lines in pg_hba.conf. */
  tls?: { cert: string; key: string };
}

export function postgresVersionMajor(binDir: string): number | undefined {
  try {
    const out = execFileSync(path.join(binDir, 'postgres'), ['--version']).toString();
    return Number(/(\d+)(?:\.\d+)?/.exec(out)?.[1]);
  } catch {
    return undefined;
  }
}

/** The embedded binaries, where the server's OS account can run them (a cached copy when the clone is private to root). */
async function embeddedBinDir(): Promise<string | undefined> {
  try {
    return path.dirname((await loadBinaries(osUserForPostgres())).initdb);
  } catch {
    return undefined;
  }
}

/** Binaries of the wanted major version: Debian's, else the embedded ones; else whatever exists. */
export async function binDirFor(major: number): Promise<string | undefined> {
  const candidates = [`/usr/lib/postgresql/${major}/bin`, await embeddedBinDir()].filter(
    (dir): dir is string => !!dir && existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'pg_ctl')),
  );
  return candidates.find((dir) => postgresVersionMajor(dir) === major) ?? candidates[0];
}

export async function startPrivateCluster(binDir: string, options: PrivateClusterOptions = {}): Promise<PrivateCluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'task-api-neon-cluster-'));
  await chmod(dir, 0o755);
  // PostgreSQL refuses to run as root: as root, run it as the OS user postgres.
  let owner: { uid: number; gid: number } | undefined;
  if (userInfo().uid === 0) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
    owner = { uid: id('-u'), gid: id('-g') };
    await chown(dir, owner.uid, owner.gid);
  }
  const writeOwned = async (file: string, content: string, mode = 0o600) => {
    await writeFile(file, content, { mode });
    if (owner) await chown(file, owner.uid, owner.gid);
  };
  const password = randomBytes(18).toString('hex');
  const pwfile = path.join(dir, 'pwfile');
  await writeOwned(pwfile, `${password}\n`);
  const run = (bin: string, args: string[]) =>
    execFileAsync(path.join(binDir, bin), args, { ...owner, cwd: dir }).catch((error: { stderr?: string; message: string }) => {
      throw new Error(`${bin} failed: ${error.stderr || error.message}`);
    });

  const data = path.join(dir, 'data');
  await run('initdb', [`--pgdata=${data}`, '--username=postgres', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C']);
  await rm(pwfile, { force: true });
  const settings = [`-p PORT`, `-k ${dir}`, '-c listen_addresses=127.0.0.1'];
  if (options.tls) {
    await writeOwned(path.join(data, 'server.crt'), options.tls.cert, 0o644);
    await writeOwned(path.join(data, 'server.key'), options.tls.key);
    settings.push('-c ssl=on', '-c ssl_cert_file=server.crt', '-c ssl_key_file=server.key');
    // TLS and SCRAM only, as on Neon: no plain-text connection is accepted.
    await writeOwned(
      path.join(data, 'pg_hba.conf'),
      ['local all all scram-sha-256', 'hostssl all all 127.0.0.1/32 scram-sha-256', ''].join('\n'),
    );
  }
  const port = await freePort();
  const serverOptions = settings.join(' ').replace('PORT', String(port));
  const start = () => run('pg_ctl', ['-D', data, '-l', path.join(dir, 'postgres.log'), '-w', '-t', '60', '-o', serverOptions, 'start']);
  const stop = () => run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
  await start();
  const query = options.tls ? '?sslmode=disable' : '';
  return {
    // Over the Unix socket with TLS on (hostssl allows no plain TCP); over TCP without.
    superuserUrl: options.tls
      ? `postgres://postgres:${password}@localhost:${port}/postgres?host=${encodeURIComponent(dir)}`
      : `postgres://postgres:${password}@127.0.0.1:${port}/postgres${query}`,
    major: postgresVersionMajor(binDir) ?? 0,
    dir,
    port,
    async stop() {
      await stop().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
    async stopServer() {
      await stop();
    },
    async startServer() {
      await start();
    },
  };
}
