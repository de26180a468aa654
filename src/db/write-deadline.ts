// The deadline a write batch carries (see migrations/…160000_write_deadline.sql):
// the moment after which the gateway will have answered 503. PostgreSQL
// checks it on its own clock, so the gateway states it on that clock.
//
// Clock skew: each connection measures the database's clock once, and again
// at most every OFFSET_MAX_AGE_MS: the gateway reads its clock (t0), asks for
// clock_timestamp() (d), reads its clock again (t1). The database's clock was
// d at some gateway time between t0 and t1, so (database − gateway) >= d − t1,
// however large the skew. A deadline G on the gateway's clock is sent as
// G + (d − t1) − drift: never later, on the database's clock, than G really
// is. The error only ever makes the database stricter, by at most the
// measurement's round trip plus the drift allowance. Both clocks must not
// step (NTP slewing is fine: DRIFT_PER_MS covers 1,000 ppm).
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { Statement } from './request-transaction.js';

/** How long one measurement of a connection's clock offset is trusted. */
const OFFSET_MAX_AGE_MS = 60_000;
/** Drift allowed between two clocks, per millisecond since the measurement. */
const DRIFT_PER_MS = 0.001;

/** The gateway's clock: wall time at start-up, advancing monotonically. */
export function gatewayNow(): number {
  return performance.timeOrigin + performance.now();
}

interface Offset {
  /** A lower bound of (database clock − gateway clock), in ms. */
  low: number;
  measuredAt: number;
}

const offsets = new WeakMap<pg.ClientBase, Offset>();

const CLOCK_QUERY = 'select (extract(epoch from clock_timestamp()) * 1000)::float8 as ms';

async function offsetOf(client: pg.ClientBase): Promise<Offset> {
  const known = offsets.get(client);
  if (known && gatewayNow() - known.measuredAt < OFFSET_MAX_AGE_MS) return known;
  const { rows } = await client.query<{ ms: string | number }>(CLOCK_QUERY);
  const t1 = gatewayNow();
  const offset = { low: Number(rows[0].ms) - t1, measuredAt: t1 };
  offsets.set(client, offset);
  return offset;
}

export interface WriteDeadline {
  /** On the gateway's clock (gatewayNow()). */
  gatewayMs: number;
  /** The first statement of the batch: api.begin_write(deadline on the database's clock). */
  statement: Statement;
}

export const BEGIN_WRITE = { name: 'task_api_begin_write', text: 'select api.begin_write($1)' };

/**
 * The deadline of a batch about to be sent on `client`, budgetMs from now.
 * Measures the connection's clock first when needed (a query of its own,
 * before anything of the write is sent).
 */
export async function writeDeadline(client: pg.ClientBase, budgetMs: number): Promise<WriteDeadline> {
  const offset = await offsetOf(client);
  const gatewayMs = gatewayNow() + budgetMs;
  const drift = (gatewayMs - offset.measuredAt) * DRIFT_PER_MS + 1;
  const databaseMs = Math.floor(gatewayMs + offset.low - drift);
  return { gatewayMs, statement: { ...BEGIN_WRITE, values: [new Date(databaseMs).toISOString()] } };
}
