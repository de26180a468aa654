// A list is rendered from PostgreSQL's DataRow bytes (src/db/task-json-bytes.ts),
// single tasks from strings (src/db/task-json.ts). Both must produce the same
// JSON for the same rows, whatever the text holds and however the rows arrive
// over the socket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../src/db/pool.js';
import { RawRowClient } from '../src/db/raw-row-client.js';
import { renderTaskList, TASK_COLUMNS, type RawTaskRow } from '../src/db/task-json.js';
import { TaskListJson } from '../src/db/task-json-bytes.js';
import { rowsOf, runPipelined } from '../src/db/transaction-pipeline.js';
import { ownerUrl } from './support/database.js';

let client: RawRowClient;
beforeAll(async () => {
  client = new RawRowClient({ connectionString: ownerUrl() });
  await client.connect();
});
afterAll(() => client.end());

/** Rows of literal values in TASK_COLUMNS order, as the list query returns them. */
function literalRows(rows: { title: string; description: string | null; createdAt?: string; completed?: boolean }[]) {
  const values: unknown[] = [];
  const tuples = rows.map((row, i) => {
    values.push(row.title, row.description, row.createdAt ?? '2026-11-27 13:00:00.123+00', row.completed ?? i % 2 === 0);
    const n = values.length;
    return `(md5('${i}')::uuid, 'user "${i}" \\ é', $${n - 3}::text, $${n - 2}::text, $${n}::boolean,
              $${n - 1}::timestamptz, $${n - 1}::timestamptz + interval '1.5 seconds', ${i + 1}::bigint)`;
  });
  return {
    text: `select ${TASK_COLUMNS} from (values ${tuples.join(', ')})
             as t(id, user_id, title, description, completed, created_at, updated_at, version)`,
    values,
  };
}

async function renderBothWays(statement: { text: string; values: unknown[] }, timezone = 'UTC') {
  const setTimezone = { text: "select set_config('timezone', $1, true)", values: [timezone] };
  const fromBytes = await runPipelined(client as never, [setTimezone, statement], new TaskListJson());
  const rows = await runPipelined(client as never, [setTimezone, statement], rowsOf<RawTaskRow>());
  return { fromBytes: fromBytes.toString('utf8'), fromStrings: renderTaskList(rows), rows };
}

/** Equality of two long strings, reported as where they first differ. */
function expectSame(actual: string, expected: string) {
  let i = 0;
  while (i < Math.min(actual.length, expected.length) && actual[i] === expected[i]) i++;
  const around = (text: string) => JSON.stringify(text.slice(Math.max(0, i - 40), i + 40));
  expect(i === actual.length && i === expected.length, `differ at ${i}: ${around(actual)} vs ${around(expected)}`).toBe(true);
}

describe('a task list rendered from bytes', () => {
  it('is the same JSON as from strings, with every character that needs escaping', async () => {
    const controls = Array.from({ length: 0x20 }, (_, code) => String.fromCharCode(code)).join('').slice(1); // PostgreSQL text holds no NUL
    const awkward = [
      { title: `quote " backslash \\ solidus / ${controls}`, description: null },
      { title: 'é ü 中文 🎉 \u2028 \u2029 \u007f', description: '</script><!--' },
      { title: 'plain', description: '' },
      { title: '"', description: '\\' },
    ];
    const { fromBytes, fromStrings } = await renderBothWays(literalRows(awkward));
    expectSame(fromBytes, fromStrings);
    const parsed = JSON.parse(fromBytes) as { title: string; description: string | null; user_id: string }[];
    expect(parsed.map(({ title, description }) => ({ title, description }))).toEqual(awkward);
    expect(parsed[1].user_id).toBe('user "1" \\ é');
  });

  it('renders timestamps with any fraction as RFC 3339 with milliseconds', async () => {
    const times = ['2026-11-27 13:00:00+00', '2026-11-27 13:00:00.1+00', '2026-11-27 13:00:00.12+00', '2026-11-27 13:00:00.123456+00', '1999-12-31 23:59:59.999+00'];
    const statement = literalRows(times.map((createdAt) => ({ title: 't', description: null, createdAt })));
    const { fromBytes, fromStrings } = await renderBothWays(statement);
    expectSame(fromBytes, fromStrings);
    expect((JSON.parse(fromBytes) as { created_at: string }[]).map((task) => task.created_at)).toEqual([
      '2026-11-27T13:00:00.000Z',
      '2026-11-27T13:00:00.100Z',
      '2026-11-27T13:00:00.120Z',
      '2026-11-27T13:00:00.123Z',
      '1999-12-31T23:59:59.999Z',
    ]);

    // Outside UTC the text has another offset and takes the slow path, to the same instant.
    const elsewhere = await renderBothWays(statement, 'Asia/Kolkata');
    expectSame(elsewhere.fromBytes, fromBytes);
  });

  it('is the same JSON for a list far larger than one socket read', async () => {
    // ~3 MB: rows arrive split across many reads and the output buffer grows.
    const rows = Array.from({ length: 300 }, (_, i) => ({ title: `task ${i} "${'é'.repeat(i % 7)}"`, description: `${i}\n`.repeat(2_000) }));
    const { fromBytes, fromStrings } = await renderBothWays(literalRows(rows));
    expect(fromBytes.length).toBeGreaterThan(1_000_000);
    expectSame(fromBytes, fromStrings);
  });

  it('is an empty array when there are no rows', async () => {
    const { fromBytes } = await renderBothWays({ text: `select ${TASK_COLUMNS} from api.tasks where false`, values: [] });
    expect(fromBytes).toBe('[]');
  });
});

describe("the gateway's pool", () => {
  it('hands rows over as bytes, and as strings to ordinary queries', async () => {
    const pool = createPool(ownerUrl(), { max: 1, connectTimeoutMs: 5_000, connectRetryMs: 0, statementTimeoutMs: 5_000 });
    try {
      const pooled = await pool.connect();
      try {
        const list = await runPipelined(pooled, [literalRows([{ title: 'from the pool', description: null }])], new TaskListJson());
        expect(JSON.parse(list.toString('utf8'))).toMatchObject([{ title: 'from the pool', description: null }]);
        const { rows } = await pooled.query<{ answer: number; word: string }>("select 42 as answer, 'é' as word");
        expect(rows).toEqual([{ answer: 42, word: 'é' }]);
      } finally {
        pooled.release();
      }
    } finally {
      await pool.end();
    }
  });
});
