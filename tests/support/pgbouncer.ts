// Starts Debian's PgBouncer in transaction mode in front of a test database,
// the way Neon's pooled URL behaves: every transaction may run on a different
// server connection, and session state must not leak between them.
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { connectClient } from '../../src/db/connection-settings.js';
import { freePort } from '../../src/db/embedded-cluster.js';

export const PGBOUNCER_BIN = process.env.PGBOUNCER_BIN ?? '/usr/sbin/pgbouncer';

function osUser(name: string) {
  const id = (flag: string) => Number(execFileSync('id', [flag, name]).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

export interface PgBouncer {
  /** The authenticator URL through PgBouncer. */
  url: string;
  /** PgBouncer's log file. */
  logFile: string;
  stop(): Promise<void>;
}

export interface PgBouncerOptions {
  /**
   * TLS on both sides, as Neon's pooler: clients must use TLS (certificate and
   * key given), and PgBouncer verifies the server's certificate against `ca`.
   * The returned URL then asks for verify-full against that CA.
   */
  tls?: { cert: string; key: string; ca: string; serverHost: string };
  /** Server connections per (user, database); 10 unless given. */
  poolSize?: number;
  /** false: only wait for the port (the user may not exist yet). */
  waitForLogin?: boolean;
}

export async function startPgBouncer(targetUrl: string, options: PgBouncerOptions = {}): Promise<PgBouncer> {
  const target = new URL(targetUrl);
  const user = decodeURIComponent(target.username);
  const password = decodeURIComponent(target.password);
  const database = target.pathname.slice(1);
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'task-api-pgbouncer-'));
  await chmod(dir, 0o755);
  // As root, PgBouncer drops to the postgres user, which must own its log and pid files.
  const runAs = userInfo().uid === 0 ? osUser('postgres') : undefined;
  if (runAs) await chown(dir, runAs.uid, runAs.gid);

  await writeFile(path.join(dir, 'userlist.txt'), `"${user}" "${password}"\n`, { mode: 0o644 });
  await writeFile(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `${database} = host=${options.tls?.serverHost ?? target.hostname} port=${target.port || 5432} dbname=${database}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      `default_pool_size = ${options.poolSize ?? 10}`,
      'max_client_conn = 500',
      // Let clients send the start-up parameters node-postgres uses.
      'ignore_startup_parameters = extra_float_digits,options,statement_timeout',
      ...(options.tls
        ? [
            'client_tls_sslmode = require',
            `client_tls_cert_file = ${options.tls.cert}`,
            `client_tls_key_file = ${options.tls.key}`,
            'server_tls_sslmode = verify-full',
            `server_tls_ca_file = ${options.tls.ca}`,
          ]
        : []),
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
    { mode: 0o644 },
  );

  const args = [path.join(dir, 'pgbouncer.ini')];
  if (runAs) args.unshift('-u', 'postgres');
  const child: ChildProcess = spawn(PGBOUNCER_BIN, args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const url = new URL(targetUrl);
  url.hostname = options.tls ? 'localhost' : '127.0.0.1';
  url.port = String(port);
  url.search = '';
  if (options.tls) {
    url.searchParams.set('sslmode', 'verify-full');
    url.searchParams.set('sslrootcert', options.tls.ca);
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if (options.waitForLogin === false) {
        await new Promise<void>((resolve, reject) => {
          const socket = connect(port, '127.0.0.1', () => (socket.end(), resolve()));
          socket.once('error', reject);
        });
        break;
      }
      const client = await connectClient(url.toString());
      await client.query('select 1');
      await client.end();
      break;
    } catch (error) {
      if (Date.now() > deadline || child.exitCode !== null) {
        child.kill('SIGKILL');
        throw new Error(`PgBouncer did not start: ${(error as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  return {
    url: url.toString(),
    logFile: path.join(dir, 'pgbouncer.log'),
    async stop() {
      child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
