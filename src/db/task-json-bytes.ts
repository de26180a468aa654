// The list of tasks rendered from PostgreSQL's DataRow bytes straight into the
// response body: no string per value, no intermediate objects. A list of 100
// tasks is the API's hot path, and its ~800 values as JavaScript strings were
// most of the gateway's garbage (see docs/performance.md).
//
// The output is byte for byte what renderTaskList (src/db/task-json.ts) makes
// of the same rows; tests/db-task-json.test.ts holds the two to that.
import { RawDataRow } from './raw-row-client.js';
import { timestampToRfc3339 } from './task-json.js';

const ascii = (text: string) => Buffer.from(text, 'latin1');
const ID = ascii('{"id":"');
const USER_ID = ascii('","user_id":"');
const TITLE = ascii('","title":"');
const DESCRIPTION = ascii('","description":');
const COMPLETED_TRUE = ascii(',"completed":true,"created_at":"');
const COMPLETED_FALSE = ascii(',"completed":false,"created_at":"');
const UPDATED_AT = ascii('","updated_at":"');
const END = ascii('"}');
const NULL = ascii('null');
/** Bytes a row adds besides its values, with room to spare. */
const ROW_OVERHEAD = 160;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** JSON.stringify's short escapes for control characters. */
const SHORT_ESCAPES: Record<number, number> = { 0x08: 0x62, 0x09: 0x74, 0x0a: 0x6e, 0x0c: 0x66, 0x0d: 0x72 };
const HEX = ascii('0123456789abcdef');

/**
 * Collects a task list's rows (TASK_COLUMNS order) as one JSON array, whole
 * (finish) or in pieces (take, then finish for the rest) when the list is
 * streamed (src/db/row-stream.ts).
 */
export class TaskListJson {
  private out = Buffer.allocUnsafe(16_384);
  private length = 1;
  private rows = 0;

  constructor() {
    this.out[0] = 0x5b; // [
  }

  /** Must be called while the row is being handled: its bytes are reused afterwards. */
  add(row: RawDataRow): void {
    if (!(row instanceof RawDataRow)) throw new TypeError('TaskListJson needs the raw rows of RawRowClient');
    const bytes = row.bytes;
    // A value can grow sixfold when escaped (\u00XX), plus the keys.
    this.reserve(ROW_OVERHEAD + 6 * row.length);
    if (this.rows++ > 0) this.out[this.length++] = 0x2c; // ,

    let offset = row.start + 2;
    const next = () => {
      const length = bytes.readInt32BE(offset);
      const start = offset + 4;
      offset = start + Math.max(length, 0);
      return length === -1 ? -1 : start;
    };
    const end = () => offset;

    let start = next();
    this.append(ID);
    this.copy(bytes, start, end());
    this.append(USER_ID);
    start = next();
    this.escape(bytes, start, end());
    this.append(TITLE);
    start = next();
    this.escape(bytes, start, end());
    this.append(DESCRIPTION);
    start = next();
    if (start === -1) {
      this.append(NULL);
    } else {
      this.out[this.length++] = QUOTE;
      this.escape(bytes, start, end());
      this.out[this.length++] = QUOTE;
    }
    start = next();
    this.append(bytes[start] === 0x74 /* t */ ? COMPLETED_TRUE : COMPLETED_FALSE);
    start = next();
    this.timestamp(bytes, start, end());
    this.append(UPDATED_AT);
    start = next();
    this.timestamp(bytes, start, end());
    this.append(END);
  }

  /** The bytes rendered since the last take; the array continues in a new buffer. */
  take(): Buffer {
    const piece = this.out.subarray(0, this.length);
    this.out = Buffer.allocUnsafe(Math.min(Math.max(this.out.length, 16_384), 262_144));
    this.length = 0;
    return piece;
  }

  /** Bytes rendered and not yet taken. */
  get pending(): number {
    return this.length;
  }

  /** The JSON array of every row added (or its rest, after take). */
  finish(): Buffer {
    this.reserve(1);
    this.out[this.length++] = 0x5d; // ]
    return this.out.subarray(0, this.length);
  }

  private reserve(bytes: number) {
    if (this.length + bytes <= this.out.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.length + bytes));
    this.out.copy(grown, 0, 0, this.length);
    this.out = grown;
  }

  private append(constant: Buffer) {
    this.copy(constant, 0, constant.length);
  }

  // A plain loop: the pieces are a few dozen bytes, for which Buffer.copy's
  // own overhead costs more than the copying (measured in docs/performance.md).
  private copy(source: Buffer, start: number, end: number) {
    const out = this.out;
    let length = this.length;
    for (let i = start; i < end; i++) out[length++] = source[i];
    this.length = length;
  }

  /** A JSON string's contents, escaped as JSON.stringify escapes them. */
  private escape(source: Buffer, start: number, end: number) {
    const out = this.out;
    let length = this.length;
    for (let i = start; i < end; i++) {
      const byte = source[i];
      if (byte >= 0x20 && byte !== QUOTE && byte !== BACKSLASH) {
        out[length++] = byte; // bytes of multi-byte UTF-8 characters pass as they are
      } else if (byte === QUOTE || byte === BACKSLASH) {
        out[length++] = BACKSLASH;
        out[length++] = byte;
      } else if (SHORT_ESCAPES[byte] !== undefined) {
        out[length++] = BACKSLASH;
        out[length++] = SHORT_ESCAPES[byte];
      } else {
        out[length++] = BACKSLASH;
        out[length++] = 0x75; // u
        out[length++] = 0x30;
        out[length++] = 0x30;
        out[length++] = HEX[byte >> 4];
        out[length++] = HEX[byte & 0xf];
      }
    }
    this.length = length;
  }

  /** timestamptz text as timestampToRfc3339 renders it, from the bytes when it can. */
  private timestamp(source: Buffer, start: number, end: number) {
    const size = end - start;
    // Fast path: "YYYY-MM-DD HH:MM:SS[.f{1,6}]+00" → "YYYY-MM-DDTHH:MM:SS.fffZ"
    if (size >= 22 && source[start + 10] === 0x20 && source[end - 3] === 0x2b && source[end - 2] === 0x30 && source[end - 1] === 0x30) {
      const out = this.out;
      this.copy(source, start, start + 10);
      out[this.length++] = 0x54; // T
      this.copy(source, start + 11, start + 19);
      out[this.length++] = 0x2e; // .
      const fractionStart = start + 20;
      const fractionEnd = size > 22 ? end - 3 : fractionStart;
      for (let i = 0; i < 3; i++) {
        out[this.length++] = fractionStart + i < fractionEnd ? source[fractionStart + i] : 0x30;
      }
      out[this.length++] = 0x5a; // Z
      return;
    }
    this.length += this.out.write(timestampToRfc3339(source.toString('latin1', start, end)), this.length, 'latin1');
  }
}
