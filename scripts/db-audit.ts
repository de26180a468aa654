// npm run db:audit: prints RLS state, policies and reachable roles, and exits
// non-zero when the audit fails. Audits DATABASE_OWNER_URL, else DATABASE_URL,
// else the embedded database in DATA_DIR (started for the audit and stopped).
import { runAudit } from '../src/db/audit.js';
import { openEmbeddedDatabase } from '../src/db/database.js';

const url = process.env.DATABASE_OWNER_URL || process.env.DATABASE_URL;
const embedded = url ? undefined : await openEmbeddedDatabase(process.env.DATA_DIR || './.data');
try {
  const result = await runAudit(url ?? embedded!.ownerUrl!);
  console.log(result.report);
  process.exitCode = result.passed ? 0 : 1;
} finally {
  await embedded?.stop();
}
