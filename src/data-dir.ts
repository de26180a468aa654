// DATA_DIR holds the embedded cluster, its passwords and the development
// secret, so it is used only when nobody else can have prepared or changed
// it: created 0700 by this process's account, or already existing, owned by
// that account and writable by nobody else. Files read from it are checked
// the same way and opened without following links.
import { constants, openSync, fstatSync, closeSync, fchmodSync, type Stats } from 'node:fs';
import { lstat, mkdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

/** A refusal about DATA_DIR, told to the user as one sentence (no stack trace). */
export class DataDirError extends Error {}

const myUid = () => process.geteuid?.() ?? -1;

function describeOwner(stats: Stats) {
  return stats.uid === 0 ? 'root' : `uid ${stats.uid}`;
}

function checkOwnedDirectory(dir: string, stats: Stats) {
  if (!stats.isDirectory()) throw new DataDirError(`DATA_DIR ${dir} is not a directory`);
  if (myUid() >= 0 && stats.uid !== myUid()) {
    throw new DataDirError(
      `DATA_DIR ${dir} belongs to ${describeOwner(stats)}, not to the account running the server: refusing to use a directory someone else prepared`,
    );
  }
  if (stats.mode & 0o022) {
    throw new DataDirError(
      `DATA_DIR ${dir} is writable by ${stats.mode & 0o002 ? 'others' : 'its group'} (mode ${(stats.mode & 0o777).toString(8)}): run chmod 700 ${dir}, or choose another DATA_DIR`,
    );
  }
}

/**
 * Creates DATA_DIR (mode 0700) or checks an existing one; returns its real
 * path. A parent that others may write without the sticky bit would let them
 * swap DATA_DIR for their own, so that is refused too.
 */
export async function prepareDataDir(dataDir: string): Promise<string> {
  const dir = path.resolve(dataDir);
  const parent = path.dirname(dir);
  try {
    await mkdir(parent, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new DataDirError(`cannot create ${parent} for DATA_DIR: ${(error as Error).message}`);
  }
  const parentStats = await stat(parent);
  if (parentStats.mode & 0o002 && !(parentStats.mode & 0o1000)) {
    throw new DataDirError(
      `DATA_DIR ${dir} is in ${parent}, which anyone can write to (and without the sticky bit): choose another DATA_DIR`,
    );
  }
  try {
    // Not recursive: if someone creates it first, this fails and the
    // existing directory is checked below like any other.
    await mkdir(dir, { mode: 0o700 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM') {
      throw new DataDirError(`cannot create DATA_DIR ${dir}: ${parent} is not writable by this account (set DATA_DIR to a directory it can write)`);
    }
    if (code !== 'EEXIST') throw error;
  }
  const real = await realpath(dir);
  checkOwnedDirectory(dir, await lstat(real));
  return real;
}

/** Refuses a file in DATA_DIR that is not ours alone. */
function checkPrivateFile(file: string, stats: Stats) {
  if (!stats.isFile()) throw new DataDirError(`${file} is not a regular file: refusing to use it`);
  if (myUid() >= 0 && stats.uid !== myUid()) {
    throw new DataDirError(`${file} belongs to ${describeOwner(stats)}, not to the account running the server: refusing to use it`);
  }
  if (stats.mode & 0o077) {
    throw new DataDirError(
      `${file} can be read or written by others (mode ${(stats.mode & 0o777).toString(8)}): refusing to use it; remove it to have a new one made`,
    );
  }
}

/** Opens a file that must be ours and private, never through a symbolic link. */
export function openPrivateFile(file: string, flags: number): number {
  let fd: number;
  try {
    fd = openSync(file, flags | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new DataDirError(`${file} is a symbolic link: refusing to follow it`);
    }
    throw error;
  }
  try {
    const stats = fstatSync(fd);
    // Logs kept by older versions were 0644: tighten them rather than refuse.
    if (flags & constants.O_APPEND && stats.isFile() && stats.uid === myUid() && stats.mode & 0o077) {
      fchmodSync(fd, 0o600);
      checkPrivateFile(file, fstatSync(fd));
    } else {
      checkPrivateFile(file, stats);
    }
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** PostgreSQL's log: appended to, 0600, never through a link. */
export function openLogFile(file: string): number {
  return openPrivateFile(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT);
}
