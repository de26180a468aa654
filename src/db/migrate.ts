// Brings a database to the current schema: dbmate applies migrations/, then
// every file in policies/ is applied in one transaction. Both steps are
// idempotent, so this runs on every start of the embedded database and on
// every deploy.
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connectClient } from './connection-settings.js';

const execFileAsync = promisify(execFile);
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const migrationsDir = path.join(projectRoot, 'migrations');
const policiesDir = path.join(projectRoot, 'policies');
const dbmateBin = path.join(projectRoot, 'node_modules', '.bin', 'dbmate');

/**
 * The URL for dbmate, whose Go driver (lib/pq) reads sslmode as libpq does
 * but knows disable, require, verify-ca and verify-full only, defaults to
 * require, sends unknown parameters to the server as settings, and cannot do
 * channel binding. So: no sslmode means disable (as for every other
 * connection here), sslrootcert=system means its default CA store, and
 * channel_binding=require — which migrate() has already checked with a
 * connection of its own — becomes sslmode=verify-full for dbmate's
 * connection: the server is then authenticated by its certificate instead.
 */
export function forDbmate(url: string): string {
  const parsed = new URL(url);
  const params = parsed.searchParams;
  if (!params.has('sslmode')) params.set('sslmode', 'disable');
  if (params.get('channel_binding') === 'require') params.set('sslmode', 'verify-full');
  if (params.get('sslrootcert') === 'system') params.delete('sslrootcert');
  params.delete('channel_binding');
  return parsed.toString();
}

/** Neon's pooled host: its endpoint id ends in -pooler. */
export function isPooledHost(url: string): boolean {
  return /-pooler(\.|$)/.test(new URL(url).hostname);
}

export class MigrationTargetError extends Error {}

export async function dbmate(ownerUrl: string, ...command: string[]): Promise<string> {
  const { stdout } = await execFileAsync(
    dbmateBin,
    ['--url', forDbmate(ownerUrl), '--migrations-dir', migrationsDir, '--no-dump-schema', ...command],
    { env: { ...process.env, DATABASE_URL: '' } },
  ).catch((error: { stderr?: string; stdout?: string; message: string }) => {
    throw new Error(`dbmate ${command.join(' ')} failed: ${error.stderr || error.stdout || error.message}`);
  });
  return stdout;
}

export async function applyPolicies(ownerUrl: string): Promise<string[]> {
  const files = (await readdir(policiesDir)).filter((name) => name.endsWith('.sql')).sort();
  const client = await connectClient(ownerUrl);
  try {
    await client.query('begin');
    for (const file of files) {
      await client.query(await readFile(path.join(policiesDir, file), 'utf8'));
    }
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    await client.end();
  }
  return files;
}

export async function migrate(ownerUrl: string): Promise<void> {
  if (isPooledHost(ownerUrl)) {
    throw new MigrationTargetError(
      `${new URL(ownerUrl).hostname} is a pooled (-pooler) host: migrations, role changes and the password run as the ` +
        'owner over the direct host, since a transaction-mode pooler does not keep one session. Remove "-pooler" from the host name.',
    );
  }
  // The URL's sslmode and channel_binding, checked by a connection that
  // honours both, before dbmate's (which cannot bind the channel) connects.
  // A database that does not exist yet (dbmate creates it) is reported after
  // authentication, so the check has then done its job.
  await connectClient(ownerUrl).then(
    (check) => check.end(),
    (error: { code?: string }) => {
      if (error.code !== '3D000') throw error;
    },
  );
  await dbmate(ownerUrl, 'up');
  await applyPolicies(ownerUrl);
}
