// A result too large to hold, streamed: the request's statements go out as in
// transaction-pipeline.ts, but the last one's portal is executed a batch of
// rows at a time (Execute with a row count, then Flush instead of Sync), and
// the next batch is asked for only when the reader has taken the previous
// one. So the gateway holds about one batch per response whatever the size of
// the list, and between batches the event loop serves other requests.
//
// The whole list is read in one transaction, from one snapshot: a consistent
// list, at the price of holding a pooled connection while the client reads.
// That is bounded: when the list is not finished `deadlineMs` after it began
// (DB_STATEMENT_TIMEOUT_MS, as for any statement), the response is aborted
// (the client sees a truncated, failed transfer) and the connection is handed
// back at once. Clients reading huge lists over slow links page with `limit`.
//
// A list that fits in the first batch, the common case, is answered as one
// buffer, exactly as before streaming existed.
import { Readable } from 'node:stream';
import type { RawDataRow } from './raw-row-client.js';
import { toWire, type Connection, type PipelinedStatement } from './transaction-pipeline.js';

/** Renders rows into bytes that can be taken piece by piece. */
export interface ChunkedCollector {
  add(row: RawDataRow): void;
  /** The bytes rendered since the last take. */
  take(): Buffer;
  /** Bytes rendered and not yet taken. */
  readonly pending: number;
  /** The rest, once every row was added. */
  finish(): Buffer;
}

export interface RowStreamOptions {
  /** Rows of the first batch: a list this long or shorter is answered in one piece. */
  firstBatchRows: number;
  /** About how many bytes each later batch should render to (its row count follows the rows seen so far). */
  batchBytes: number;
  /** How long the whole list may take, the client's reading included. */
  deadlineMs: number;
}

export const DEFAULT_ROW_STREAM_OPTIONS: Omit<RowStreamOptions, 'deadlineMs'> = {
  firstBatchRows: 32,
  batchBytes: 256 * 1024,
};

/** The response was cut because its reader did not take it in time. */
export class SlowReaderError extends Error {}

type State = 'executing' | 'suspended' | 'syncing' | 'done';

class ListBody extends Readable {
  constructor(private readonly wantMore: () => void, private readonly stop: () => void) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _read(): void {
    this.wantMore();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.stop(); // the client went away or the deadline passed: no more batches
    callback(error);
  }
}

export class StreamedTransaction {
  /** Called once the transaction is over and the connection can be reused (or must be discarded). */
  callback?: (error: Error | null) => void;
  /** Resolves with the first piece (the whole body if it was short), or rejects with the error that prevented it. */
  readonly started: Promise<Buffer | Readable>;

  private resolveStarted!: (body: Buffer | Readable) => void;
  private rejectStarted!: (error: Error) => void;
  private connection?: Connection;
  private state: State = 'executing';
  private statementIndex = 0;
  private readonly parsing: string[] = [];
  private parsed = 0;
  private body?: ListBody;
  private aborted = false;
  /** The last piece was handed over: the reader has the whole list. */
  private delivered = false;
  private rowsSeen = 0;
  private bytesSeen = 0;
  private timer?: NodeJS.Timeout;
  private collectorError?: Error;
  private readonly onParseComplete = () => {
    this.parsed += 1;
  };

  constructor(
    private readonly statements: PipelinedStatement[],
    private readonly collector: ChunkedCollector,
    private readonly options: RowStreamOptions,
  ) {
    this.started = new Promise((resolve, reject) => {
      this.resolveStarted = resolve;
      this.rejectStarted = reject;
    });
    this.started.catch(() => {}); // observed by the caller; never an unhandled rejection
  }

  submit(connection: Connection): Error | null {
    let values: (string | null)[][];
    try {
      values = this.statements.map((statement) => statement.values.map(toWire));
    } catch (error) {
      return error as Error;
    }
    this.connection = connection;
    connection.on('parseComplete', this.onParseComplete);
    this.timer = setTimeout(() => this.abort(new SlowReaderError('the list was not read within the statement timeout')), this.options.deadlineMs);
    connection.stream.cork();
    try {
      const last = this.statements.length - 1;
      this.statements.forEach((statement, i) => {
        const name = statement.name ?? '';
        if (!name || connection.parsedStatements[name] !== statement.text) {
          connection.parse({ text: statement.text, name, types: [] });
          this.parsing.push(name);
        }
        connection.bind({ portal: '', statement: name, values: values[i] });
        connection.describe({ type: 'P', name: '' });
        connection.execute({ portal: '', rows: i === last ? this.options.firstBatchRows : 0 });
      });
      connection.flush();
    } finally {
      connection.stream.uncork();
    }
    return null;
  }

  handleRowDescription(): void {}

  handleDataRow(row: RawDataRow): void {
    if (this.statementIndex !== this.statements.length - 1 || this.collectorError || this.aborted) return;
    try {
      const before = this.collector.pending;
      this.collector.add(row);
      this.rowsSeen += 1;
      this.bytesSeen += this.collector.pending - before;
    } catch (error) {
      this.collectorError = error as Error;
    }
  }

  handleCommandComplete(): void {
    this.statementIndex += 1;
    if (this.statementIndex !== this.statements.length) return;
    // Every row is in; the reader need not wait for the read-only commit.
    if (!this.aborted && !this.collectorError) this.deliverRest();
    this.sync();
  }

  handleEmptyQuery(): void {
    this.handleCommandComplete();
  }

  /** A batch is in: hand it to the reader, and fetch the next once it wants more. */
  handlePortalSuspended(): void {
    if (this.aborted || this.collectorError) return this.sync();
    const piece = this.collector.take();
    if (!this.body) {
      this.body = new ListBody(
        () => this.next(),
        () => this.abort(),
      );
      this.resolveStarted(this.body);
    }
    this.state = 'suspended';
    if (this.body.push(piece)) this.next();
  }

  handleCopyInResponse(): void {}

  handleCopyData(): void {}

  handleError(error: Error): void {
    // After a server error PostgreSQL skips to the next Sync: send it, so
    // the connection comes back. Any other error means the connection is lost.
    if (this.state !== 'syncing' && this.state !== 'done' && 'severity' in error) this.sync();
    this.finish(error);
  }

  handleReadyForQuery(): void {
    this.finish(null);
  }

  /** The next batch, sized to hold about batchBytes of rendered rows. */
  private next(): void {
    if (this.state !== 'suspended' || this.aborted || !this.connection) return;
    const bytesPerRow = Math.max(1, this.bytesSeen / Math.max(1, this.rowsSeen));
    const rows = Math.max(1, Math.min(10_000, Math.floor(this.options.batchBytes / bytesPerRow)));
    this.state = 'executing';
    this.connection.execute({ portal: '', rows });
    this.connection.flush();
  }

  private sync(): void {
    if (this.state === 'syncing' || this.state === 'done' || !this.connection) return;
    this.state = 'syncing';
    this.connection.sync();
  }

  /** Stops the list: the reader gets an error, the connection is synced and returned. */
  private abort(error?: Error): void {
    if (this.aborted || this.state === 'done') return;
    this.aborted = true;
    if (this.state === 'suspended') this.sync(); // else at the end of the batch being executed
    if (error) {
      if (this.body) this.body.destroy(error);
      else this.rejectStarted(error);
    }
  }

  private finish(error: Error | null): void {
    if (this.state === 'done') return;
    this.state = 'done';
    clearTimeout(this.timer);
    const connection = this.connection;
    if (connection) {
      connection.removeListener('parseComplete', this.onParseComplete);
      for (const name of this.parsing.slice(0, this.parsed)) {
        if (name) connection.parsedStatements[name] = this.statements.find((s) => s.name === name)!.text;
      }
    }
    const failure = error ?? this.collectorError;
    if (failure && !this.delivered) {
      if (this.body) this.body.destroy(failure);
      else this.rejectStarted(failure);
    } else if (!this.delivered && !this.body) {
      this.rejectStarted(new SlowReaderError('the list was abandoned'));
    }
    this.callback?.(error);
  }

  private deliverRest(): void {
    let rest: Buffer;
    try {
      rest = this.collector.finish();
    } catch (error) {
      this.collectorError = error as Error;
      return;
    }
    this.delivered = true;
    if (this.body) {
      this.body.push(rest);
      this.body.push(null);
    } else {
      this.resolveStarted(rest); // it all fitted in the first batch
    }
  }
}
