// Runs db/audit.sql (the file reviewers run with psql) through node-postgres
// and prints its table of checks. psql meta-commands are the file's only
// non-SQL: \ir includes another file (the allow-list) and is inlined here;
// \set and \unset only steer psql's output and are dropped.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { clientOptions } from './connection-settings.js';
import { projectRoot } from './migrate.js';

export const auditSqlPath = path.join(projectRoot, 'db', 'audit.sql');

/** The line that separates the checks and their report from the verdict. */
const VERDICT_MARKER = /^-- Verdict:.*$/m;

/** One row of the audit's table: a check that passed, or one offence. */
export interface AuditRow {
  check: string;
  result: 'pass' | 'FAIL';
  object: string;
  role: string;
  why: string;
}

export interface AuditResult {
  passed: boolean;
  /** The table of checks and the verdict, as printed by npm run db:audit. */
  report: string;
  rows: AuditRow[];
  /** The offences alone. */
  failures: AuditRow[];
}

/** db/audit.sql as one SQL text, with its \ir includes inlined. */
export async function loadAuditSql(file = auditSqlPath): Promise<string> {
  const lines = (await readFile(file, 'utf8')).split('\n');
  const out: string[] = [];
  for (const line of lines) {
    const meta = /^\\(\S+)\s*(.*)$/.exec(line);
    if (!meta) {
      out.push(line);
    } else if (meta[1] === 'ir') {
      out.push(await loadAuditSql(path.resolve(path.dirname(file), meta[2].trim())));
    } else if (meta[1] !== 'set' && meta[1] !== 'unset') {
      throw new Error(`${file}: psql meta-command \\${meta[1]} is not supported outside psql`);
    }
  }
  return out.join('\n');
}

function formatTable(result: pg.QueryResult): string {
  const columns = result.fields.map((field) => field.name);
  const cells = result.rows.map((row) => columns.map((name) => String(row[name] ?? '')));
  const widths = columns.map((name, i) => Math.max(name.length, ...cells.map((row) => row[i].length)));
  const line = (values: string[]) => values.map((value, i) => value.padEnd(widths[i])).join(' | ').trimEnd();
  return [line(columns), widths.map((w) => '-'.repeat(w)).join('-+-'), ...cells.map(line)].join('\n');
}

/**
 * Runs the audit on an open connection. The file opens its own transaction
 * and ends it with ROLLBACK when it passes; inside a caller's transaction
 * (a mutation test) it runs in that transaction, sees its uncommitted
 * changes, and ends it (ROLLBACK when passing, aborted when failing).
 */
export async function runAuditOn(client: pg.ClientBase): Promise<AuditResult> {
  const sql = await loadAuditSql();
  const [checksSql, verdictSql] = sql.split(VERDICT_MARKER);
  if (verdictSql === undefined) throw new Error(`${auditSqlPath}: no "-- Verdict:" line`);
  const notices: string[] = [];
  const onNotice = (notice: { message?: string }) => notices.push(notice.message ?? '');
  client.on('notice', onNotice);
  try {
    const results = [await client.query(checksSql)].flat() as pg.QueryResult[];
    const table = results.find((result) => result.fields.some((field) => field.name === 'check'));
    if (!table) throw new Error(`${auditSqlPath} printed no table of checks`);
    const rows = table.rows.map(({ check, result, object, role, why }) => ({ check, result, object, role, why }) as AuditRow);
    const failures = rows.filter((row) => row.result === 'FAIL');
    let verdict: string;
    let passed: boolean;
    try {
      await client.query(verdictSql);
      passed = true;
      verdict = notices.filter((notice) => notice.startsWith('RLS audit')).join('\n');
    } catch (error) {
      passed = false;
      verdict = (error as Error).message;
    }
    return { passed, report: `${formatTable(table)}\n\n${verdict}`, rows, failures };
  } finally {
    client.off('notice', onNotice);
  }
}

export async function runAudit(url: string): Promise<AuditResult> {
  const { Client, ...options } = clientOptions(url); // sslmode, channel_binding as in the URL
  const client = new Client(options);
  await client.connect();
  try {
    const result = await runAuditOn(client);
    if (!result.passed) await client.query('rollback');
    return result;
  } finally {
    await client.end();
  }
}
