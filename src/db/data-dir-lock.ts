// One gateway per DATA_DIR. The owner is recorded in DATA_DIR/gateway.pid as
// its pid and the kernel's start time of that pid (so a recycled pid is not
// mistaken for the owner). The file is made complete under a temporary name
// and linked into place, which fails if it exists: of two simultaneous
// starts exactly one gets it. A file whose process is gone is taken over.
import { randomBytes } from 'node:crypto';
import { closeSync, constants, linkSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { DataDirError, openPrivateFile } from '../data-dir.js';
import { isRunning, startTimeOf } from '../process-state.js';

const LOCK_FILE = 'gateway.pid';

/** Another live process owns this DATA_DIR. */
export class DataDirInUseError extends DataDirError {
  constructor(readonly dataDir: string, readonly pid: number) {
    super(`the server for DATA_DIR ${dataDir} is already running (pid ${pid})`);
  }
}

interface Owner { pid: number; startTime: string }

function isAlive(owner: Owner): boolean {
  if (!isRunning(owner.pid)) return false;
  const startTime = startTimeOf(owner.pid);
  return startTime === '' || owner.startTime === '' || startTime === owner.startTime;
}

function readOwner(file: string): { owner: Owner; text: string } | undefined {
  let fd: number;
  try {
    fd = openPrivateFile(file, constants.O_RDONLY);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const text = readFileSync(fd, 'utf8');
    const [pid, startTime = ''] = text.trim().split(' ');
    return { owner: { pid: Number(pid), startTime }, text };
  } finally {
    closeSync(fd);
  }
}

/** The live process that owns DATA_DIR, if any. */
export function liveOwner(dataDir: string): number | undefined {
  const current = readOwner(path.join(dataDir, LOCK_FILE));
  return current && isAlive(current.owner) ? current.owner.pid : undefined;
}

export interface DataDirLock { release(): void }

export function lockDataDir(dataDir: string): DataDirLock {
  const file = path.join(dataDir, LOCK_FILE);
  const text = `${process.pid} ${startTimeOf(process.pid) ?? ''}\n`;
  const temporary = path.join(dataDir, `.${LOCK_FILE}.${randomBytes(6).toString('hex')}`);
  const fd = openPrivateFile(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL);
  writeSync(fd, text);
  closeSync(fd);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(temporary, file);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 5) throw error;
      }
      const current = readOwner(file);
      if (!current) continue;
      if (isAlive(current.owner)) throw new DataDirInUseError(dataDir, current.owner.pid);
      // Stale: move it aside under a name of our own, and put it back if it
      // turns out another starter replaced it with a live one meanwhile.
      const aside = `${temporary}.stale`;
      try {
        renameSync(file, aside);
      } catch {
        continue;
      }
      if (readFileSync(aside, 'utf8') !== current.text) {
        try {
          linkSync(aside, file);
        } catch {}
        unlinkSync(aside);
        continue;
      }
      unlinkSync(aside);
    }
  } finally {
    unlinkSync(temporary);
  }

  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    const current = readOwner(file);
    if (current?.text === text) unlinkSync(file);
  };
  // Every way out of the process that runs JavaScript releases the lock;
  // after a SIGKILL the next start finds the pid dead and takes over.
  process.on('exit', release);
  return { release };
}
