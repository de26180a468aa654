// The closest stand-in for a Neon branch that runs without Neon:
//  - a private PostgreSQL cluster (the test server's major version) that
//    accepts TLS and SCRAM-SHA-256 only (hostssl lines only), with a
//    certificate for "localhost" from a CA generated here with openssl;
//  - neon_superuser and an owner made the way Neon's compute manager makes
//    neondb_owner (LOGIN CREATEROLE CREATEDB BYPASSRLS REPLICATION, member of
//    neon_superuser, not a superuser), owning the database neondb;
//  - PgBouncer (Debian's, 1.18) in transaction mode in front as the "pooled
//    host", TLS on both sides, keeping no prepared statements.
// The database is then deployed as docs/deploy-neon.md says: npm run
// db:migrate as the owner over the direct host with channel binding required.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { connectClient } from '../../src/db/connection-settings.js';
import { withDatabase } from '../../src/db/database.js';
import { projectRoot } from '../../src/db/migrate.js';
import { startPgBouncer, type PgBouncer } from './pgbouncer.js';
import { binDirFor, startPrivateCluster, type PrivateCluster } from './private-cluster.js';

const execFileAsync = promisify(execFile);

export interface NeonStandIn {
  cluster: PrivateCluster;
  pgbouncer: PgBouncer;
  /** The CA certificate's path (sslrootcert). */
  caFile: string;
  /** Superuser over the Unix socket (what Neon's own cloud_admin would be), database neondb. */
  superuserUrl: string;
  /** neondb_owner on the "direct host": TLS verified, channel binding required, as Neon's Console writes it. */
  ownerUrl: string;
  ownerPassword: string;
  authenticatorPassword: string;
  /** authenticator on the direct host. */
  directAppUrl: string;
  /** authenticator through PgBouncer (the "pooled host"), TLS verified. */
  pooledAppUrl: string;
  stop(): Promise<void>;
}

export async function startNeonStandIn(targetMajor: number): Promise<NeonStandIn> {
  const binDir = await binDirFor(targetMajor);
  if (!binDir) throw new Error('no PostgreSQL binaries (initdb, pg_ctl) found for the Neon stand-in');
  const certDir = await mkdtemp(path.join(tmpdir(), 'task-api-neon-tls-'));
  await chmod(certDir, 0o755);
  const files = await signCertificates(certDir);
  const cluster = await startPrivateCluster(binDir, {
    tls: { cert: await readFile(files.cert, 'utf8'), key: await readFile(files.key, 'utf8') },
  });
  const ownerPassword = randomBytes(18).toString('hex');
  const authenticatorPassword = randomBytes(18).toString('hex');
  const admin = await connectClient(cluster.superuserUrl);
  try {
    // neon_superuser as Neon makes it: privileged but not a superuser.
    await admin.query('create role neon_superuser nologin createdb createrole bypassrls replication');
    await admin.query(
      `create role neondb_owner login password '${ownerPassword}' createrole createdb bypassrls replication nosuperuser in role neon_superuser`,
    );
    await admin.query('create database neondb owner neondb_owner');
  } finally {
    await admin.end();
  }
  const direct = (user: string, password: string, extra: Record<string, string> = {}) => {
    const url = new URL(`postgres://localhost:${cluster.port}/neondb`);
    url.username = user;
    url.password = password;
    url.searchParams.set('sslmode', 'verify-full');
    url.searchParams.set('sslrootcert', files.ca);
    for (const [key, value] of Object.entries(extra)) url.searchParams.set(key, value);
    return url.toString();
  };
  const directAppUrl = direct('authenticator', authenticatorPassword);
  const pgbouncer = await startPgBouncer(directAppUrl, {
    tls: { ...files, serverHost: 'localhost' },
    waitForLogin: false,
  });
  return {
    cluster,
    pgbouncer,
    caFile: files.ca,
    superuserUrl: withDatabase(cluster.superuserUrl, 'neondb'),
    ownerUrl: direct('neondb_owner', ownerPassword, { channel_binding: 'require' }),
    ownerPassword,
    authenticatorPassword,
    directAppUrl,
    pooledAppUrl: pgbouncer.url,
    async stop() {
      await pgbouncer.stop();
      await cluster.stop();
      await rm(certDir, { recursive: true, force: true });
    },
  };
}

/** CA, then a server certificate for DNS:localhost signed by it. */
async function signCertificates(dir: string) {
  const openssl = (...args: string[]) =>
    execFileAsync('openssl', args, { cwd: dir }).catch((error: { stderr?: string; message: string }) => {
      throw new Error(`openssl ${args[0]} failed: ${error.stderr || error.message}`);
    });
  await writeFile(path.join(dir, 'server.ext'), 'subjectAltName = DNS:localhost\nbasicConstraints = CA:FALSE\n');
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Task API test CA', '-keyout', 'ca.key', '-out', 'ca.crt');
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr');
  await openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', 'server.crt', '-extfile', 'server.ext');
  // PgBouncer may run as the postgres user: everything readable.
  for (const name of ['ca.crt', 'server.crt', 'server.key']) await chmod(path.join(dir, name), 0o644);
  return { ca: path.join(dir, 'ca.crt'), cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key') };
}

/** npm run <script> with env; resolves to stdout+stderr, rejects with them. */
export async function npmRun(script: string, env: Record<string, string>): Promise<string> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  if (!('DATABASE_URL' in env)) delete childEnv.DATABASE_URL;
  try {
    const { stdout, stderr } = await execFileAsync('npm', ['run', '--silent', script], { cwd: projectRoot, env: childEnv });
    return `${stdout}\n${stderr}`;
  } catch (error) {
    const { stdout = '', stderr = '', code } = error as { stdout?: string; stderr?: string; code?: number };
    throw Object.assign(new Error(`npm run ${script} exited ${code}:\n${stdout}\n${stderr}`), { code });
  }
}

/**
 * TEST_NEON_STAND_IN=1: the whole run's database is the stand-in's neondb,
 * migrated as neondb_owner, and the gateway's tests connect through PgBouncer
 * (TLS, transaction mode). ownerUrl is the stand-in's superuser (some tests
 * need one to arrange data); serverUrl its postgres database.
 */
export async function provideNeonStandIn(major: number) {
  const { migrate } = await import('../../src/db/migrate.js');
  const { setAuthenticatorPassword } = await import('../../src/db/database.js');
  const neon = await startNeonStandIn(major);
  await migrate(neon.ownerUrl);
  await setAuthenticatorPassword(neon.ownerUrl, neon.authenticatorPassword);
  return {
    ownerUrl: neon.superuserUrl,
    appUrl: neon.pooledAppUrl,
    directAppUrl: neon.directAppUrl,
    serverUrl: withDatabase(neon.superuserUrl, 'postgres'),
    stop: () => neon.stop(),
  };
}
