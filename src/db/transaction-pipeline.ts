// A request's statements as one extended-protocol batch: Parse/Bind/Describe/
// Execute for each, then a single Sync. PostgreSQL runs everything before a
// Sync as one implicit transaction and commits it at the Sync, so there is no
// BEGIN or COMMIT to send, the whole request is one write and one reply, and
// transaction-local settings (set_config(..., true)) end with it — safe behind
// a transaction-mode pooler.
//
// It plugs into node-postgres as a "submittable" (the interface pg-cursor and
// pg-query-stream use). The last statement's rows go to a RowCollector: by
// default arrays of text (or null) as PostgreSQL sent them, which
// src/db/task-json.ts renders; a list is rendered from the rows' bytes by
// src/db/task-json-bytes.ts.
import type pg from 'pg';
import type { RawDataRow } from './raw-row-client.js';
import { PipelineWriter, wireValuesOf } from './pipeline-writer.js';

export interface PipelinedStatement {
  /** A name makes it a prepared statement, parsed once per connection. */
  name?: string;
  text: string;
  values: unknown[];
}

/** The parts of node-postgres's Connection a submittable drives. */
export interface Connection {
  stream: { cork(): void; uncork(): void };
  parsedStatements: Record<string, string>;
  parse(query: { text: string; name: string; types: number[] }): void;
  bind(config: { portal: string; statement: string; values: (string | null)[] }): void;
  describe(message: { type: 'P'; name: string }): void;
  execute(config: { portal: string; rows: number }): void;
  sync(): void;
  flush(): void;
  on(event: 'parseComplete', listener: () => void): void;
  removeListener(event: 'parseComplete', listener: () => void): void;
}

export type RawRow = (string | null)[];

/** Receives the result rows while each is handled, and makes the result. */
export interface RowCollector<Result> {
  add(row: RawDataRow): void;
  finish(): Result;
}

/** The rows as arrays of text. */
export function rowsOf<Row extends RawRow>(): RowCollector<Row[]> {
  const rows: Row[] = [];
  return { add: (row) => rows.push(row.fields as Row), finish: () => rows };
}

/** Whether any byte of a batch was handed to the connection: until then its outcome is known (nothing happened). */
export interface BatchProgress {
  sent: boolean;
}

export class PipelinedTransaction<Result> {
  /** Set by the caller (and wrapped by node-postgres for query_timeout). */
  callback?: (error: Error | null, result?: Result) => void;
  /** node-postgres reads this for a per-query client-side timeout. */
  query_timeout?: number;

  private connection?: Connection;
  private statementIndex = 0;
  private readonly writer: PipelineWriter;
  private finished = false;
  /** A row the collector refused; reported at the end of the batch. */
  private collectorError?: Error;

  constructor(
    private readonly statements: PipelinedStatement[],
    private readonly collector: RowCollector<Result>,
    private readonly progress: BatchProgress = { sent: false },
  ) {
    this.writer = new PipelineWriter(statements);
  }

  submit(connection: Connection): Error | null {
    let values: (string | null)[][];
    try {
      values = wireValuesOf(this.statements);
    } catch (error) {
      return error as Error;
    }
    this.connection = connection;
    this.progress.sent = true;
    this.writer.listen(connection);
    this.writer.write(connection, values);
    return null;
  }

  handleRowDescription(): void {}

  handleDataRow(message: RawDataRow): void {
    // Only the last statement's rows are the result.
    if (this.statementIndex !== this.statements.length - 1 || this.collectorError) return;
    try {
      this.collector.add(message);
    } catch (error) {
      this.collectorError = error as Error; // thrown here, it would surface in node-postgres's socket handler
    }
  }

  handleCommandComplete(): void {
    this.statementIndex += 1;
  }

  handleEmptyQuery(): void {
    this.statementIndex += 1;
  }

  handlePortalSuspended(): void {}

  handleCopyInResponse(): void {}

  handleCopyData(): void {}

  /**
   * A server error ends the batch: PostgreSQL rolls the implicit transaction
   * back and skips to the Sync. node-postgres hands the error over and does
   * not report the ReadyForQuery that follows, so the batch ends here.
   */
  handleError(error: Error): void {
    // Which statement failed: the first (role and claims) fails only when
    // the login role may not become `authenticated`.
    (error as Error & { statementIndex?: number }).statementIndex = this.statementIndex;
    this.finish(error);
  }

  handleReadyForQuery(): void {
    this.finish(null);
  }

  private finish(error: Error | null): void {
    if (this.finished) return;
    this.finished = true;
    const connection = this.connection;
    if (connection) this.writer.settle(connection);
    if (error) return this.callback?.(error);
    if (this.collectorError) return this.callback?.(this.collectorError);
    let result: Result;
    try {
      result = this.collector.finish();
    } catch (collectorError) {
      return this.callback?.(collectorError as Error);
    }
    this.callback?.(null, result);
  }
}

export interface RunOptions {
  /** Client-side limit for the answer (default: the pool's query_timeout). */
  queryTimeoutMs?: number;
  /** Set to sent once the batch is handed to the connection. */
  progress?: BatchProgress;
}

/** Runs a pipelined transaction on a checked-out client. */
export function runPipelined<Result>(
  client: pg.PoolClient,
  statements: PipelinedStatement[],
  collector: RowCollector<Result>,
  options: RunOptions = {},
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const transaction = new PipelinedTransaction(statements, collector, options.progress);
    if (options.queryTimeoutMs !== undefined) transaction.query_timeout = Math.max(1, Math.ceil(options.queryTimeoutMs));
    transaction.callback = (error, result) => (error ? reject(error) : resolve(result!));
    client.query(transaction as unknown as pg.QueryConfig);
  });
}
