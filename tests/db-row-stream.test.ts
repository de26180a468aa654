// A list streamed in pieces (src/db/row-stream.ts) is byte for byte the list
// rendered whole; a short list is still one buffer; an error before the first
// piece is an ordinary error, one after it ends the body; and the pool serves
// the next request either way.
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../src/db/pool.js';
import { createRequestRunner, type RequestRunner } from '../src/db/request-transaction.js';
import { renderTaskList, TASK_COLUMNS, type RawTaskRow } from '../src/db/task-json.js';
import { TaskListJson } from '../src/db/task-json-bytes.js';
import { rowsOf } from '../src/db/transaction-pipeline.js';
import { appUrl } from './support/database.js';

const pool = createPool(appUrl(), { max: 1, connectTimeoutMs: 5_000, connectRetryMs: 0, statementTimeoutMs: 5_000 });
let run: RequestRunner;
const identity = { sub: 'row-stream', claimsJson: JSON.stringify({ sub: 'row-stream' }) };

beforeAll(() => {
  run = createRequestRunner({
    pool,
    preparedStatements: process.env.TEST_PREPARED_STATEMENTS !== 'false',
    statementTimeoutMs: 5_000,
    connectRetryMs: 0,
    maxTasksPerUser: 10,
  });
});
afterAll(() => pool.end());

/** `count` generated rows in TASK_COLUMNS order, with text that needs escaping and sizes that vary. */
function generatedRows(count: number, failAt?: number) {
  return {
    text: `select ${TASK_COLUMNS} from (
             select md5(n::text)::uuid as id, 'user "' || n || '" \\ é' as user_id,
                    'row ' || n || chr(1) || '"\\é😀' as title,
                    case when n % 3 = 0 then null else repeat(chr(10) || 'ü' || chr(31), n * 7) end as description,
                    n % 2 = 0 as completed,
                    timestamptz '2026-11-27 13:00:00.123+00' + n * interval '1.001 seconds' as created_at,
                    timestamptz '2026-11-27 13:00:00+00' as updated_at, n::bigint as version
               from generate_series(1, $1::int) n
              where $2::int is null or 1 / (n - $2::int) is not null) t`,
    values: [count, failAt ?? null],
  };
}

async function readAll(body: Buffer | Readable): Promise<string> {
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  const pieces: Buffer[] = [];
  for await (const piece of body) pieces.push(piece as Buffer);
  return Buffer.concat(pieces).toString('utf8');
}

describe('a streamed list', () => {
  it('is the same bytes as the list rendered whole, for a list of many pieces', async () => {
    const statement = generatedRows(700);
    const body = await run.stream(identity, statement, new TaskListJson());
    expect(Buffer.isBuffer(body), 'streamed, not one buffer').toBe(false);
    const streamed = await readAll(body);
    const whole = await run(identity, 'read', statement, new TaskListJson());
    const rows = await run(identity, 'read', statement, rowsOf<RawTaskRow>());
    expect(streamed).toBe(whole.toString('utf8'));
    expect(streamed).toBe(renderTaskList(rows));
    expect(JSON.parse(streamed)).toHaveLength(700);
  });

  it('a short list is one buffer, and an empty one is []', async () => {
    const short = await run.stream(identity, generatedRows(5), new TaskListJson());
    expect(Buffer.isBuffer(short)).toBe(true);
    expect(JSON.parse(await readAll(short))).toHaveLength(5);
    expect(await readAll(await run.stream(identity, generatedRows(0), new TaskListJson()))).toBe('[]');
  });

  it('an error before the first piece is thrown; the connection serves the next list', async () => {
    await expect(run.stream(identity, generatedRows(10, 3), new TaskListJson())).rejects.toMatchObject({ code: '22012' });
    expect(JSON.parse(await readAll(await run.stream(identity, generatedRows(3), new TaskListJson())))).toHaveLength(3);
  });

  it('an error after the first piece ends the body with it; the connection serves the next list', async () => {
    const body = await run.stream(identity, generatedRows(300, 250), new TaskListJson());
    await expect(readAll(body)).rejects.toMatchObject({ code: '22012' });
    expect(JSON.parse(await readAll(await run.stream(identity, generatedRows(300), new TaskListJson())))).toHaveLength(300);
  });

  it('a body the reader abandons lets its connection go at once', async () => {
    const body = (await run.stream(identity, generatedRows(1000), new TaskListJson())) as Readable;
    body.destroy();
    // One connection in the pool: this list waits for the abandoned one to let go.
    expect(JSON.parse(await readAll(await run.stream(identity, generatedRows(40), new TaskListJson())))).toHaveLength(40);
  });
});
