// The write deadline in SQL: api.begin_write refuses a transaction that
// starts late, and the deferred check inside COMMIT refuses one that
// finishes late, whatever ran in between. Real transactions as the gateway
// runs them (role authenticated, the user's claims).
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type pg from 'pg';
import { writeDeadline } from '../src/db/write-deadline.js';
import { appUrl, becomeUser, callTask, connect, uniqueSub } from './support/database.js';

let db: pg.Client;
const sub = uniqueSub('deadline');
let taskId: string;

beforeAll(async () => {
  db = await connect(appUrl());
  await db.query('begin');
  await becomeUser(db, sub);
  taskId = (await callTask(db, 'create_task', { p_title: 'deadline' })).id;
  await db.query('commit');
});

afterAll(async () => {
  await db?.end();
});

const inMs = (ms: number) => `(clock_timestamp() + interval '${ms} milliseconds')`;

async function completed() {
  await db.query('begin');
  await becomeUser(db, sub);
  const { rows } = await db.query('select completed, version from api.tasks where id = $1', [taskId]);
  await db.query('commit');
  return rows[0];
}

/** Runs the statements as one transaction of the user's; resolves to the SQLSTATE it failed with, if any. */
async function transaction(statements: string[]): Promise<string | undefined> {
  try {
    await db.query('begin');
    await becomeUser(db, sub);
    for (const text of statements) await db.query(text);
    await db.query('commit');
    return undefined;
  } catch (error) {
    await db.query('rollback');
    return (error as pg.DatabaseError).code;
  }
}

describe('api.begin_write', () => {
  it('refuses a write that starts after its deadline (PT503), changing nothing', async () => {
    const before = await completed();
    expect(await transaction([`select api.begin_write(${inMs(-1)})`, `select api.toggle_task('${taskId}', null)`])).toBe('PT503');
    expect(await completed()).toEqual(before);
  });

  it('refuses at COMMIT a write whose deadline passed after its last statement', async () => {
    const before = await completed();
    const code = await transaction([
      `select api.begin_write(${inMs(300)})`,
      `select api.toggle_task('${taskId}', null)`,
      'select pg_sleep(0.5)',
    ]);
    expect(code).toBe('PT503');
    expect(await completed()).toEqual(before);
  });

  it('commits a write that finishes before its deadline', async () => {
    const before = await completed();
    expect(await transaction([`select api.begin_write(${inMs(5_000)})`, `select api.toggle_task('${taskId}', null)`])).toBeUndefined();
    const after = await completed();
    expect(after.completed).toBe(!before.completed);
  });

  it('leaves writes without a deadline (psql, PostgREST) alone', async () => {
    const before = await completed();
    expect(await transaction([`select api.toggle_task('${taskId}', null)`, 'select pg_sleep(0.05)'])).toBeUndefined();
    expect((await completed()).completed).toBe(!before.completed);
  });
});

describe('the deadline the gateway states, whatever the clock skew', () => {
  // The gateway's clock is skewed by an hour either way against the
  // database's; the deadline it computes must still mean "budget from now"
  // on the database's clock.
  for (const skewMs of [3_600_000, -3_600_000]) {
    it(`with the gateway ${skewMs > 0 ? 'an hour ahead' : 'an hour behind'}: commits in time, refuses late`, async () => {
      const realNow = performance.now.bind(performance);
      const spy = vi.spyOn(performance, 'now').mockImplementation(() => realNow() + skewMs);
      const client = await connect(appUrl());
      try {
        const inTime = await writeDeadline(client, 1_000);
        const late = await writeDeadline(client, 200);
        const run = async (deadline: typeof inTime, waitMs: number) => {
          try {
            await client.query('begin');
            await becomeUser(client, sub);
            await client.query(deadline.statement.text, deadline.statement.values);
            await client.query(`select api.toggle_task('${taskId}', null)`);
            await client.query(`select pg_sleep(${waitMs / 1000})`);
            await client.query('commit');
            return undefined;
          } catch (error) {
            await client.query('rollback');
            return (error as pg.DatabaseError).code;
          }
        };
        expect(await run(inTime, 0)).toBeUndefined();
        expect(await run(late, 400)).toBe('PT503');
      } finally {
        spy.mockRestore();
        await client.end();
      }
    });
  }
});
