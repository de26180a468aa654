// The write deadline in SQL: api.begin_write refuses a transaction that
// starts late, and the deferred check inside COMMIT refuses one that
// finishes late, whatever ran in between. Real transactions as the gateway
// runs them (role authenticated, the user's claims).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
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
