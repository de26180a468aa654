// A result too large to hold, streamed. The request's statements go out as
// one pipelined batch, as in transaction-pipeline.ts; the last one's rows are
// rendered as they arrive and handed to the response in pieces of about
// `pieceBytes`. When the response cannot take more (the client reads slower
// than PostgreSQL sends), the gateway stops reading the connection's socket,
// so TCP makes PostgreSQL wait: the gateway holds about one piece per
// response whatever the size of the list, and between socket reads the event
// loop serves other requests.
//
// The whole list is read by one statement in one transaction, from one
// snapshot: a consistent list, at the price of holding a pooled connection
// while the client reads. That is bounded: when the list is not finished
// `deadlineMs` after it began (DB_STATEMENT_TIMEOUT_MS, as for any
// statement), the response is cut off (the client sees a failed transfer)
// and the connection is closed, which ends the statement in PostgreSQL; the
// pool opens another. Clients reading huge lists over slow links page with
// `limit`.
//
// A list that fits in one piece, the common case, is answered as one buffer,
// exactly as before streaming existed, in the same single round trip.
import { Readable } from 'node:stream';
import type { RawDataRow } from './raw-row-client.js';
import { PipelineWriter, wireValuesOf } from './pipeline-writer.js';
import type { Connection, PipelinedStatement } from './transaction-pipeline.js';

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
  /** About how many bytes each piece of the body holds; a body this size or smaller is one Buffer. */
  pieceBytes: number;
  /** How long the whole list may take, the client's reading included. */
  deadlineMs: number;
  /** The fastest a list is sent, so that one list cannot take all of the gateway's CPU. */
  maxBytesPerSecond: number;
}

export const DEFAULT_PIECE_BYTES = 256 * 1024;
/**
 * 64 MiB/s: the largest list the default byte quota allows (16 MiB of
 * control characters, ~100 MB of JSON) goes out in under 2 s, well within the
 * default statement timeout, while rendering it takes a fraction of a core.
 */
export const DEFAULT_MAX_BYTES_PER_SECOND = 64 * 1024 * 1024;

/** The response was cut because it was not read in time, or its reader went away. */
export class ListAbandonedError extends Error {}

/** What a streamed transaction needs of the connection beyond the pipeline's part. */
interface StreamConnection extends Connection {
  stream: Connection['stream'] & { pause(): void; resume(): void; destroy(): void };
}

class ListBody extends Readable {
  constructor(private readonly wantMore: () => void, private readonly stop: () => void) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _read(): void {
    this.wantMore();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.stop(); // the client went away, or the deadline passed
    callback(error);
  }
}

export class StreamedTransaction {
  /** Called once: the connection can be reused (null, or a server error) or must be discarded (any other error). */
  callback?: (error: Error | null) => void;
  /** Resolves with the whole body when it is short, else a Readable; rejects with the error that came first. */
  readonly started: Promise<Buffer | Readable>;

  private resolveStarted!: (body: Buffer | Readable) => void;
  private rejectStarted!: (error: Error) => void;
  private connection?: StreamConnection;
  private statementIndex = 0;
  private readonly writer: PipelineWriter;
  private body?: ListBody;
  private paused = false;
  private resuming = false;
  /** The body is complete, or failed: no more rows are rendered. */
  private settled = false;
  private done = false;
  private timer?: NodeJS.Timeout;
  private startedAt = 0;
  private bytesHandedOver = 0;
  private collectorError?: Error;

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
    this.writer = new PipelineWriter(statements);
  }

  submit(connection: StreamConnection): Error | null {
    let values: (string | null)[][];
    try {
      values = wireValuesOf(this.statements);
    } catch (error) {
      return error as Error;
    }
    this.connection = connection;
    this.startedAt = Date.now();
    this.writer.listen(connection);
    this.timer = setTimeout(() => this.abandon(new ListAbandonedError('the list was not read within the statement timeout')), this.options.deadlineMs);
    this.writer.write(connection, values);
    return null;
  }

  handleRowDescription(): void {}

  handleDataRow(row: RawDataRow): void {
    if (this.statementIndex !== this.statements.length - 1 || this.settled || this.collectorError) return;
    try {
      this.collector.add(row);
    } catch (error) {
      this.collectorError = error as Error;
      return;
    }
    if (this.collector.pending >= this.options.pieceBytes) this.handOver(this.collector.take());
  }

  handleCommandComplete(): void {
    this.statementIndex += 1;
    // Every row is in: the reader need not wait for the read-only commit.
    if (this.statementIndex === this.statements.length && !this.settled && !this.collectorError) this.deliverRest();
  }

  handleEmptyQuery(): void {
    this.handleCommandComplete();
  }

  handlePortalSuspended(): void {}

  handleCopyInResponse(): void {}

  handleCopyData(): void {}

  handleError(error: Error): void {
    // Which statement failed (see transaction-pipeline.ts).
    (error as Error & { statementIndex?: number }).statementIndex = this.statementIndex;
    this.finish(error);
  }

  handleReadyForQuery(): void {
    this.finish(null);
  }

  /** A piece for the reader; when it has enough queued, PostgreSQL waits. */
  private handOver(piece: Buffer): void {
    if (!this.body) {
      this.body = new ListBody(
        () => this.resumeReading(),
        () => this.abandon(),
      );
      this.resolveStarted(this.body);
    }
    this.bytesHandedOver += piece.length;
    if (!this.body.push(piece) && !this.paused) {
      this.paused = true;
      this.connection?.stream.pause();
    }
  }

  /**
   * Reads on, after the event loop has turned (libuv reads a readable socket
   * up to 32 times in a row, so resuming at once would let one list take
   * megabytes per turn while other requests wait), and no faster than
   * maxBytesPerSecond.
   */
  private resumeReading(): void {
    if (!this.paused || this.done || this.resuming) return;
    this.resuming = true;
    const resume = () => {
      this.resuming = false;
      if (!this.paused || this.done) return;
      this.paused = false;
      this.connection?.stream.resume();
    };
    const aheadMs = (this.bytesHandedOver / this.options.maxBytesPerSecond) * 1000 - (Date.now() - this.startedAt);
    if (aheadMs >= 1) setTimeout(resume, aheadMs);
    else setImmediate(resume);
  }

  private deliverRest(): void {
    let rest: Buffer;
    try {
      rest = this.collector.finish();
    } catch (error) {
      this.collectorError = error as Error;
      return;
    }
    this.settled = true;
    // The body is complete: its reader will not ask for more, and what is left
    // on the socket (the commit's ReadyForQuery) must still be read.
    this.resumeReading();
    if (this.body) {
      this.body.push(rest);
      this.body.push(null);
    } else {
      this.resolveStarted(rest);
    }
  }

  /**
   * The reader went away or the deadline passed before the list was sent:
   * the body fails (a cut-off transfer) and the connection is closed, which
   * ends the statement in PostgreSQL even while it waits to send.
   */
  private abandon(reason?: Error): void {
    if (this.done || this.settled) return;
    this.settled = true;
    const error = reason ?? new ListAbandonedError('the reader went away');
    if (this.body && !this.body.destroyed) this.body.destroy(error);
    else if (!this.body) this.rejectStarted(error);
    this.connection?.stream.destroy();
    this.finish(error);
  }

  private finish(error: Error | null): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    const connection = this.connection;
    if (connection) {
      // The last messages may have been parsed from the read that paused the
      // socket: the connection goes back to the pool, reading again.
      if (this.paused) {
        this.paused = false;
        connection.stream.resume();
      }
      this.writer.settle(connection);
    }
    const failure = error ?? this.collectorError;
    if (failure && !this.settled) {
      this.settled = true;
      if (this.body) this.body.destroy(failure);
      else this.rejectStarted(failure);
    }
    this.callback?.(error);
  }
}
