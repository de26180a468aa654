// Brings a database to the current schema: dbmate applies migrations/, then
// every file in policies/ is applied in one transaction. Both steps are
// idempotent, so this runs on every start of the embedded database and on
// every deploy.
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileAsync = promisify(execFile);
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const migrationsDir = path.join(projectRoot, 'migrations');
const policiesDir = path.join(projectRoot, 'policies');
const dbmateBin = path.join(projectRoot, 'node_modules', '.bin', 'dbmate');

/** dbmate wants sslmode spelled out; a URL without it means a local server. */
function forDbmate(url: string): string {
  const parsed = new URL(url);
  if (!parsed.searchParams.has('sslmode')) parsed.searchParams.set('sslmode', 'disable');
  // dbmate's driver sends unknown URL parameters to the server as settings;
  // Neon's connection strings carry channel_binding=require.
  parsed.searchParams.delete('channel_binding');
  return parsed.toString();
}

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
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
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
  await dbmate(ownerUrl, 'up');
  await applyPolicies(ownerUrl);
}
