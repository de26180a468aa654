// Named (prepared) statements where the connection keeps them, unnamed ones
// where it does not. Behind a transaction-mode pooler that does not keep
// prepared statements (PgBouncer before 1.21, or with
// max_prepared_statements = 0) each transaction may run on another server
// connection, where a name the gateway prepared is missing (SQLSTATE 26000)
// or, prepared by another client, already taken (42P05).
//
// Both errors are raised at Parse or Bind, and any error in a pipelined batch
// rolls its implicit transaction back (transaction-pipeline.ts): the batch
// did nothing and none of its rows reached the collector. So it is re-run
// once, unnamed, and names are not used again by this runner.
import type pg from 'pg';
import { runPipelined, type PipelinedStatement, type RowCollector, type RunOptions } from './transaction-pipeline.js';

const NAMED_STATEMENT_LOST = new Set(['26000', '42P05']);

function lostNamedStatement(error: unknown): boolean {
  const { code, severity } = (error ?? {}) as { code?: unknown; severity?: unknown };
  return typeof code === 'string' && severity !== undefined && NAMED_STATEMENT_LOST.has(code);
}

const unnamed = (statements: PipelinedStatement[]) => statements.map((statement) => ({ ...statement, name: undefined }));

export class NamedStatements {
  constructor(private enabled: boolean) {}

  /** Whether statements are still sent with their names. */
  get inUse(): boolean {
    return this.enabled;
  }

  /** The statements as the next run sends them (for a streamed list, which runs them itself). */
  forNextRun(statements: PipelinedStatement[]): PipelinedStatement[] {
    return this.enabled ? statements : unnamed(statements);
  }

  /** After a failed run: whether it failed for a lost name (names are then off, and the run may be repeated). */
  lost(error: unknown): boolean {
    // Another request may have turned names off meanwhile: this run still used them.
    if (!lostNamedStatement(error)) return false;
    this.enabled = false;
    return true;
  }

  async run<Result>(
    client: pg.PoolClient,
    statements: PipelinedStatement[],
    collector: RowCollector<Result>,
    options: RunOptions = {},
  ): Promise<Result> {
    if (!this.enabled) return runPipelined(client, unnamed(statements), collector, options);
    try {
      return await runPipelined(client, statements, collector, options);
    } catch (error) {
      if (!lostNamedStatement(error)) throw error;
      this.enabled = false;
      return runPipelined(client, unnamed(statements), collector, options);
    }
  }
}
