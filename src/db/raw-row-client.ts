// A node-postgres Client whose DataRow messages also carry their undecoded
// bytes, so a list of tasks can be rendered from PostgreSQL's bytes straight
// into the response (src/db/task-json-bytes.ts) instead of through one
// JavaScript string per value.
//
// Everything else is node-postgres unchanged: the parser is pg-protocol's own,
// and `fields` still gives the values as strings (decoded on first use), so
// ordinary client.query() results are the same as with pg.Client.
import pg from 'pg';
import { Parser } from 'pg-protocol/dist/parser.js';

const DATA_ROW = 0x44; // 'D'

/**
 * A DataRow whose values are read from `bytes` at `start` (the field count).
 * The bytes belong to the parser and are reused once the message has been
 * handled, so they may only be read synchronously while it is being handled.
 */
export class RawDataRow {
  readonly name = 'dataRow';
  readonly fieldCount: number;
  private decoded?: (string | null)[];

  constructor(
    readonly length: number,
    readonly bytes: Buffer,
    readonly start: number,
  ) {
    this.fieldCount = bytes.readInt16BE(start);
  }

  get fields(): (string | null)[] {
    if (!this.decoded) {
      const fields: (string | null)[] = new Array(this.fieldCount);
      let offset = this.start + 2;
      for (let i = 0; i < this.fieldCount; i++) {
        const length = this.bytes.readInt32BE(offset);
        offset += 4;
        fields[i] = length === -1 ? null : this.bytes.toString('utf8', offset, offset + length);
        if (length > 0) offset += length;
      }
      this.decoded = fields;
    }
    return this.decoded;
  }
}

// handlePacket is pg-protocol's per-message hook: parse() frames the stream
// and hands each message's offset, code and length to it. Its typings call it
// private, hence the cast. tests/db-raw-rows.test.ts fails if a pg-protocol
// release stops calling it.
const ProtocolParser = Parser as unknown as new () => {
  parse(buffer: Buffer, callback: (message: { name: string }) => void): void;
  handlePacket(offset: number, code: number, length: number, bytes: Buffer): { name: string };
};

class RawRowParser extends ProtocolParser {
  override handlePacket(offset: number, code: number, length: number, bytes: Buffer) {
    if (code === DATA_ROW) return new RawDataRow(length, bytes, offset);
    return super.handlePacket(offset, code, length, bytes);
  }
}

/** What this module relies on of node-postgres's Connection (lib/connection.js). */
interface ConnectionInternals {
  _emitMessage: boolean;
  emit(event: string, message: unknown): boolean;
  attachListeners(stream: NodeJS.ReadableStream): void;
}

export class RawRowClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    const connection = (this as unknown as { connection: ConnectionInternals }).connection;
    // The same as Connection.attachListeners, with RawRowParser for pg-protocol's parser.
    connection.attachListeners = (stream) => {
      const parser = new RawRowParser();
      stream.on('data', (buffer: Buffer) =>
        parser.parse(buffer, (message) => {
          const eventName = message.name === 'error' ? 'errorMessage' : message.name;
          if (connection._emitMessage) connection.emit('message', message);
          connection.emit(eventName, message);
        }),
      );
    };
  }
}
