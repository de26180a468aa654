// Writing a batch of statements to a connection, shared by the pipelined
// transaction (transaction-pipeline.ts) and the streamed list (row-stream.ts):
// the values as text, Parse (unless the connection already holds the named
// statement)/Bind/Describe/Execute for each and one Sync, in one corked write;
// and which named statements PostgreSQL parsed, recorded on the connection.
import type { Connection, PipelinedStatement } from './transaction-pipeline.js';

/** Values as text for the wire; only the types the gateway sends. */
export function toWire(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (Array.isArray(value) && value.every((item) => typeof item === 'string' && /^-?\d+$/.test(item))) {
    return `{${value.join(',')}}`; // integer arrays (If-Match versions) need no quoting
  }
  throw new TypeError(`cannot send a ${typeof value} as a statement parameter`);
}

/** Every statement's values as text; throws before anything is written when one cannot be sent. */
export function wireValuesOf(statements: PipelinedStatement[]): (string | null)[][] {
  return statements.map((statement) => statement.values.map(toWire));
}

/** Writes one batch and keeps count of the Parses PostgreSQL confirms. */
export class PipelineWriter {
  /** Names of the statements whose Parse was sent, in order; '' for unnamed. */
  private readonly parsing: string[] = [];
  private parsed = 0;
  private readonly onParseComplete = () => {
    this.parsed += 1;
  };

  constructor(private readonly statements: PipelinedStatement[]) {}

  /** Starts counting the connection's ParseComplete messages. */
  listen(connection: Connection): void {
    connection.on('parseComplete', this.onParseComplete);
  }

  /** Parse (when needed), Bind, Describe and Execute for each statement, then Sync, in one write. */
  write(connection: Connection, values: (string | null)[][]): void {
    connection.stream.cork();
    try {
      this.statements.forEach((statement, i) => {
        const name = statement.name ?? '';
        if (!name || connection.parsedStatements[name] !== statement.text) {
          connection.parse({ text: statement.text, name, types: [] });
          this.parsing.push(name);
        }
        connection.bind({ portal: '', statement: name, values: values[i] });
        connection.describe({ type: 'P', name: '' });
        connection.execute({ portal: '', rows: 0 });
      });
      connection.sync();
    } finally {
      connection.stream.uncork();
    }
  }

  /**
   * Stops counting and records on the connection the named statements now
   * parsed: PostgreSQL answers Parses in order and stops at an error, so the
   * first `parsed` of those sent exist.
   */
  settle(connection: Connection): void {
    connection.removeListener('parseComplete', this.onParseComplete);
    for (const name of this.parsing.slice(0, this.parsed)) {
      if (name) connection.parsedStatements[name] = this.statements.find((s) => s.name === name)!.text;
    }
  }
}
