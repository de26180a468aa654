// Runs db/audit.sql (the file reviewers run with psql) and prints its result
// sets as tables. Resolves to the list of problems; empty means it passed.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { projectRoot } from './migrate.js';

export const auditSqlPath = path.join(projectRoot, 'db', 'audit.sql');

const VERDICT_MARKER = '-- 5. Verdict.';

export interface AuditResult {
  passed: boolean;
  report: string;
}

function formatTable(result: pg.QueryResult): string {
  const columns = result.fields.map((field) => field.name);
  if (columns.length === 0) return '';
  const cells = result.rows.map((row) => columns.map((name) => String(row[name] ?? '')));
  const widths = columns.map((name, i) => Math.max(name.length, ...cells.map((row) => row[i].length)));
  const line = (values: string[]) => values.map((value, i) => value.padEnd(widths[i])).join(' | ');
  return [line(columns), widths.map((w) => '-'.repeat(w)).join('-+-'), ...cells.map(line)].join('\n');
}

export async function runAudit(url: string): Promise<AuditResult> {
  const sql = await readFile(auditSqlPath, 'utf8');
  const client = new pg.Client({ connectionString: url });
  const notices: string[] = [];
  client.on('notice', (notice) => notices.push(notice.message ?? ''));
  await client.connect();
  // The file ends in a verdict block that raises on failure; run the report
  // queries first so their tables print either way.
  const [reportSql, verdictSql] = sql.split(VERDICT_MARKER);
  try {
    const results = [await client.query(reportSql)].flat() as pg.QueryResult[];
    const tables = results.map(formatTable).filter(Boolean);
    try {
      await client.query(verdictSql);
      return { passed: true, report: [...tables, ...notices].join('\n\n') };
    } catch (error) {
      return { passed: false, report: [...tables, (error as Error).message].join('\n\n') };
    }
  } finally {
    await client.end();
  }
}
