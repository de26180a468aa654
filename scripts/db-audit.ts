// npm run db:audit: runs db/audit.sql, prints its table of checks, and exits
// as psql -f db/audit.sql does: 0 when the audit passes, 3 when it fails.
// Audits DATABASE_OWNER_URL, else DATABASE_URL, else the embedded database in
// DATA_DIR: the running server's cluster when a server owns DATA_DIR (left
// running), otherwise started for the audit and stopped.
import { runAudit } from '../src/db/audit.js';
import { openEmbeddedDatabaseShared } from '../src/db/database.js';
import { DataDirError } from '../src/data-dir.js';

/** psql's exit status when a script stops at an error under ON_ERROR_STOP. */
const AUDIT_FAILED = 3;

const url = process.env.DATABASE_OWNER_URL || process.env.DATABASE_URL;
let embedded;
try {
  embedded = url ? undefined : await openEmbeddedDatabaseShared(process.env.DATA_DIR || './.data');
} catch (error) {
  if (!(error instanceof DataDirError)) throw error;
  console.error(`db:audit: ${error.message}`);
  process.exit(1);
}
try {
  const result = await runAudit(url ?? embedded!.ownerUrl!);
  console.log(result.report);
  process.exitCode = result.passed ? 0 : AUDIT_FAILED;
} finally {
  await embedded?.stop();
}
