// Random secrets kept in files only their owner can read. A file is created
// complete, under a temporary name opened with O_CREAT|O_EXCL|O_NOFOLLOW and
// mode 0600, then linked into place, so no reader ever sees it partly written
// or with wider permissions; one that exists is read only if it is a regular
// file of ours that nobody else can read or write.
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, linkSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { openPrivateFile } from './data-dir.js';

export function readSecretFile(file: string): string {
  const fd = openPrivateFile(file, constants.O_RDONLY);
  try {
    return readFileSync(fd, 'utf8').trim();
  } finally {
    closeSync(fd);
  }
}

function writeTemporary(file: string, content: string): string {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}`);
  const fd = openPrivateFile(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(temporary);
    throw error;
  }
  closeSync(fd);
  return temporary;
}

/** Writes a secret file, replacing any previous one. */
export function writeSecretFile(file: string, secret: string): void {
  const temporary = writeTemporary(file, `${secret}\n`);
  try {
    renameSync(temporary, file);
  } catch (error) {
    unlinkSync(temporary);
    throw error;
  }
}

/** Reads a secret file, or creates it once; concurrent creators agree on one. */
export function readOrCreateSecretFile(file: string, bytes = 32): string {
  try {
    return readSecretFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const temporary = writeTemporary(file, `${randomBytes(bytes).toString('base64url')}\n`);
  try {
    linkSync(temporary, file); // fails if another process created it first
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    unlinkSync(temporary);
  }
  return readSecretFile(file);
}
