// The task functions in schema api and the table rules behind them, called
// through SQL as `authenticated` with a user's claims, each test inside a
// transaction that is rolled back (except the concurrency test, which needs
// committed transactions and cleans up after itself).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  appUrl,
  asUser,
  becomeUser,
  callTask,
  committedAsUser,
  connect,
  createTaskAs,
  errorOf,
  readTaskAs,
  rolledBack,
  sqlstateOf,
  taskCall,
  toTask,
  uniqueSub,
  type Task,
} from './support/database.js';

// Unique subs: other test files commit tasks to the same database.
const USER = uniqueSub('fn-user');
const OTHER_USER = uniqueSub('fn-other-user');

type Args = (id: string) => Record<string, unknown>;

/** Every function that acts on one task, with the arguments of a valid call. */
const taskFunctions: Array<[string, Args]> = [
  ['get_task', (id) => ({ p_id: id })],
  ['replace_task', (id) => ({ p_id: id, p_title: 'replaced', p_description: 'replaced too', p_completed: true })],
  ['update_task', (id) => ({ p_id: id, p_changes: { title: 'updated' } })],
  ['toggle_task', (id) => ({ p_id: id })],
  ['set_task_completed', (id) => ({ p_id: id, p_completed: true })],
  ['delete_task', (id) => ({ p_id: id })],
];
/** The ones that write, and so take p_if_match. */
const writeFunctions = taskFunctions.filter(([fn]) => fn !== 'get_task');

const randomId = () => randomUUID();

/** Calls fn as USER and resolves to the SQLSTATE it raised (undefined on success). */
function sqlstateOfCall(db: pg.ClientBase, fn: string, args: Record<string, unknown>) {
  const { text, values } = taskCall(fn, args);
  return asUser(db, USER, () => sqlstateOf(db, text, values));
}

describe('not found (PT404), forbidden (42501) and precondition failed (PT412)', () => {
  it.each(taskFunctions)('api.%s raises PT404 for an id no task has', async (fn, args) => {
    await rolledBack(async (db) => {
      await createTaskAs(db, USER); // the user has tasks, just not this one
      expect(await sqlstateOfCall(db, fn, args(randomId()))).toBe('PT404');
    });
  });

  it.each(writeFunctions)('api.%s raises PT404, not PT412, for an unknown id sent with an If-Match', async (fn, args) => {
    await rolledBack(async (db) => {
      expect(await sqlstateOfCall(db, fn, { ...args(randomId()), p_if_match: [1] })).toBe('PT404');
    });
  });

  it.each(taskFunctions)('api.%s raises PT404 for a task that was deleted', async (fn, args) => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER);
      await asUser(db, USER, () => callTask(db, 'delete_task', { p_id: task.id }));
      expect(await sqlstateOfCall(db, fn, args(task.id))).toBe('PT404');
    });
  });

  it.each(taskFunctions)("api.%s raises 42501 for another user's task", async (fn, args) => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, OTHER_USER);
      expect(await sqlstateOfCall(db, fn, args(task.id))).toBe('42501');
      expect(await readTaskAs(db, OTHER_USER, task.id)).toEqual(task);
    });
  });

  it.each(writeFunctions)(
    'api.%s raises PT412 and changes nothing when If-Match names none of the current versions',
    async (fn, args) => {
      await rolledBack(async (db) => {
        const task = await createTaskAs(db, USER);
        await asUser(db, USER, () => callTask(db, 'update_task', { p_id: task.id, p_changes: { title: 'v2' } }));
        const current = (await readTaskAs(db, USER, task.id))!;
        expect(current.version).toBe(2);

        for (const ifMatch of [[1], [3], [1, 3, 99], []]) {
          expect(await sqlstateOfCall(db, fn, { ...args(task.id), p_if_match: ifMatch })).toBe('PT412');
        }
        expect(await readTaskAs(db, USER, task.id)).toEqual(current);
      });
    },
  );

  it.each(writeFunctions)('api.%s succeeds when If-Match names the current version', async (fn, args) => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER);
      const result = await asUser(db, USER, () => callTask(db, fn, { ...args(task.id), p_if_match: [7, task.version] }));
      expect(result.id).toBe(task.id);
      expect(result.version).toBe(fn === 'delete_task' ? task.version : task.version + 1);
    });
  });

  it.each(writeFunctions)('api.%s has no precondition when If-Match is NULL', async (fn, args) => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER);
      await asUser(db, USER, () => callTask(db, 'toggle_task', { p_id: task.id }));
      const result = await asUser(db, USER, () => callTask(db, fn, { ...args(task.id), p_if_match: null }));
      expect(result.id).toBe(task.id);
    });
  });

  it('api.delete_task returns the deleted task and the task is gone', async () => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER, 'to delete');
      expect(await asUser(db, USER, () => callTask(db, 'delete_task', { p_id: task.id }))).toEqual(task);
      expect(await readTaskAs(db, USER, task.id)).toBeUndefined();
    });
  });
});

describe('api.create_task', () => {
  it.each([
    ['spaces', '  Buy milk  '],
    ['tabs and newlines', '\t\nBuy milk\r\n\t'],
    ['no-break space and ideographic space', '\u00A0Buy milk\u3000'],
    ['line separator and BOM', '\u2028\uFEFFBuy milk\u2029\u202F'],
  ])('trims leading and trailing white space: %s', async (_, title) => {
    await rolledBack(async (db) => {
      expect((await createTaskAs(db, USER, title)).title).toBe('Buy milk');
    });
  });

  it('keeps white space inside the title', async () => {
    await rolledBack(async (db) => {
      expect((await createTaskAs(db, USER, ' Buy \t two\u00A0 milks ')).title).toBe('Buy \t two\u00A0 milks');
    });
  });

  it("trims exactly the characters JavaScript's String.prototype.trim() removes", async () => {
    const characters: string[] = [];
    for (let code = 1; code <= 0xffff; code++) {
      if (code < 0xd800 || code > 0xdfff) characters.push(String.fromCharCode(code));
    }
    const trimmedByJavaScript = characters.filter((c) => c.trim() === '');
    await rolledBack(async (db) => {
      const { rows } = await asUser(db, USER, () =>
        db.query(
          `select c from unnest($1::text[]) with ordinality as t(c, n) where api.trim_white_space(c) = '' order by n`,
          [characters],
        ),
      );
      expect(rows.map((row) => row.c)).toEqual(trimmedByJavaScript);
    });
  });

  it("defaults description to null and completed to false, and belongs to the caller's sub", async () => {
    await rolledBack(async (db) => {
      const task = await asUser(db, USER, () => callTask(db, 'create_task', { p_title: 'defaults' }));
      expect(task).toMatchObject({ user_id: USER, title: 'defaults', description: null, completed: false, version: 1 });
      expect(task.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(task.updated_at).toEqual(task.created_at);
    });
  });

  it('treats a NULL p_completed as false and stores the given description and completed', async () => {
    await rolledBack(async (db) => {
      await asUser(db, USER, async () => {
        const nullCompleted = await callTask(db, 'create_task', { p_title: 'a', p_completed: null });
        expect(nullCompleted.completed).toBe(false);
        const full = await callTask(db, 'create_task', { p_title: 'b', p_description: 'details', p_completed: true });
        expect(full).toMatchObject({ title: 'b', description: 'details', completed: true });
      });
    });
  });
});

describe('api.update_task', () => {
  const original = { title: 'original', description: 'original description', completed: false };

  async function createOriginal(db: pg.ClientBase): Promise<Task> {
    return createTaskAs(db, USER, original.title, original.description);
  }

  it.each([
    [{ title: 'new title' }, { ...original, title: 'new title' }],
    [{ description: 'new description' }, { ...original, description: 'new description' }],
    [{ description: null }, { ...original, description: null }],
    [{ completed: true }, { ...original, completed: true }],
    [{ title: '  trimmed\n', completed: true }, { ...original, title: 'trimmed', completed: true }],
    [{ title: 't', description: null, completed: true }, { title: 't', description: null, completed: true }],
  ])('applies only the keys present in %j', async (changes, expected) => {
    await rolledBack(async (db) => {
      const task = await createOriginal(db);
      const updated = await asUser(db, USER, () => callTask(db, 'update_task', { p_id: task.id, p_changes: changes }));
      expect(updated).toMatchObject({ ...expected, id: task.id, version: 2 });
    });
  });

  it.each([
    ['an empty object', '{}'],
    ['an unknown key', { title: 'ok', user_id: OTHER_USER }],
    ['only an unknown key', { done: true }],
    ['a JSON array', '[]'],
    ['JSON null', 'null'],
    ['SQL NULL', null],
    ['completed as a string', { completed: 'true' }],
    ['completed as a number', { completed: 1 }],
    ['completed as JSON null', { completed: null }],
  ])('raises 22023 and changes nothing for %s', async (_, changes) => {
    await rolledBack(async (db) => {
      const task = await createOriginal(db);
      expect(await sqlstateOfCall(db, 'update_task', { p_id: task.id, p_changes: changes })).toBe('22023');
      expect(await readTaskAs(db, USER, task.id)).toEqual(task);
    });
  });

  it.each([
    ['a JSON null title', { title: null }],
    ['a numeric title', { title: 5 }],
    ['a boolean description', { description: true }],
    ['a string completed', { completed: 'true' }],
  ])('refuses %s with 22023 and changes nothing', async (_label, changes) => {
    await rolledBack(async (db) => {
      const task = await createOriginal(db);
      expect(await sqlstateOfCall(db, 'update_task', { p_id: task.id, p_changes: changes })).toBe('22023');
      expect(await readTaskAs(db, USER, task.id)).toEqual(task);
    });
  });
});

describe('api.replace_task, api.toggle_task and api.set_task_completed', () => {
  it('replace_task replaces every user-editable field', async () => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER, 'before', 'before description');
      const replaced = await asUser(db, USER, () =>
        callTask(db, 'replace_task', { p_id: task.id, p_title: ' after ', p_description: null, p_completed: true }),
      );
      expect(replaced).toMatchObject({ id: task.id, title: 'after', description: null, completed: true, version: 2 });
    });
  });

  it('toggle_task flips completed each time', async () => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER);
      const flips = [];
      for (let i = 0; i < 3; i++) flips.push(await asUser(db, USER, () => callTask(db, 'toggle_task', { p_id: task.id })));
      expect(flips.map((t) => t.completed)).toEqual([true, false, true]);
    });
  });

  it('set_task_completed is idempotent: the same value twice leaves it set', async () => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER);
      const set = (completed: boolean) =>
        asUser(db, USER, () => callTask(db, 'set_task_completed', { p_id: task.id, p_completed: completed }));
      expect((await set(true)).completed).toBe(true);
      expect((await set(true)).completed).toBe(true);
      expect((await set(false)).completed).toBe(false);
      expect((await set(false)).completed).toBe(false);
    });
  });

  it('set_task_completed refuses NULL with 22023', async () => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER);
      expect(await sqlstateOfCall(db, 'set_task_completed', { p_id: task.id, p_completed: null })).toBe('22023');
    });
  });
});

describe('server-owned columns: version, timestamps, id and owner', () => {
  it('every write that changes something adds exactly 1 to version, moves updated_at forward and keeps created_at; one that changes nothing keeps both', async () => {
    await rolledBack(async (db) => {
      const created = await createTaskAs(db, USER);
      const id = created.id;
      const writes = [
        () => callTask(db, 'replace_task', { p_id: id, p_title: 'r', p_description: 'd', p_completed: false }),
        () => callTask(db, 'update_task', { p_id: id, p_changes: { description: null } }),
        () => callTask(db, 'toggle_task', { p_id: id }),
        () => callTask(db, 'set_task_completed', { p_id: id, p_completed: false }),
        () => callTask(db, 'set_task_completed', { p_id: id, p_completed: false }),
        async () => toTask((await db.query(`update api.tasks set title = 'direct' where id = $1 returning *`, [id])).rows[0]),
        async () => {
          await db.query('select pg_sleep(0.01)');
          return callTask(db, 'toggle_task', { p_id: id });
        },
      ];
      const history = [created];
      for (const write of writes) history.push(await asUser(db, USER, write));

      // The second set_task_completed(false) changes nothing.
      expect(history.map((t) => t.version)).toEqual([1, 2, 3, 4, 5, 5, 6, 7]);
      expect(history[5].updated_at).toEqual(history[4].updated_at);
      for (const [previous, next] of history.slice(1).map((t, i) => [history[i], t])) {
        expect(next.updated_at.getTime()).toBeGreaterThanOrEqual(previous.updated_at.getTime());
        expect(next.created_at).toEqual(created.created_at);
        expect(next).toMatchObject({ id: created.id, user_id: USER });
      }
      expect(history.at(-1)!.updated_at.getTime()).toBeGreaterThan(created.updated_at.getTime());
    });
  });

  it('updated_at never goes back, even when the previous write is ahead of the clock', async () => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER);
      // As the owner, with triggers off, put the last write a day in the future.
      await db.query('reset role');
      await db.query(`set local session_replication_role = replica`);
      const { rows } = await db.query(
        `update api.tasks set updated_at = date_trunc('milliseconds', now() + interval '1 day') where id = $1 returning updated_at`,
        [task.id],
      );
      await db.query(`set local session_replication_role = origin`);

      const toggled = await asUser(db, USER, () => callTask(db, 'toggle_task', { p_id: task.id }));
      expect(toggled.updated_at).toEqual(rows[0].updated_at);
    });
  });

  it.each([
    ['id', 'gen_random_uuid()'],
    ['user_id', `'${USER}'`],
    ['version', '100'],
    ['created_at', 'now()'],
    ['updated_at', 'now()'],
  ])('authenticated cannot UPDATE %s (42501)', async (column, value) => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER);
      expect(await asUser(db, USER, () => sqlstateOf(db, `update api.tasks set ${column} = ${value} where id = $1`, [task.id]))).toBe('42501');
      expect(await readTaskAs(db, USER, task.id)).toEqual(task);
    });
  });

  it.each([
    ['id', 'gen_random_uuid()'],
    ['version', '100'],
    ['created_at', 'now()'],
    ['updated_at', 'now()'],
  ])('authenticated cannot INSERT %s (42501)', async (column, value) => {
    await rolledBack(async (db) => {
      expect(await asUser(db, USER, () => sqlstateOf(db, `insert into api.tasks (title, ${column}) values ('t', ${value})`))).toBe('42501');
    });
  });

  it('even the owner cannot change id, user_id, created_at or version by UPDATE: the trigger keeps them', async () => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER);
      await db.query('reset role');
      const { rows } = await db.query(
        `update api.tasks
            set id = gen_random_uuid(), user_id = 'mallory', version = 999,
                created_at = '2000-01-01', updated_at = '2000-01-01'
          where id = $1 returning *`,
        [task.id],
      );
      const updated = toTask(rows[0]);
      // Nothing a user edits changed, so neither do version and updated_at.
      expect(updated).toMatchObject({ id: task.id, user_id: USER, created_at: task.created_at, version: task.version, updated_at: task.updated_at });

      const { rows: renamed } = await db.query(
        `update api.tasks set title = 'renamed', version = 999, created_at = '2000-01-01' where id = $1 returning *`,
        [task.id],
      );
      expect(toTask(renamed[0])).toMatchObject({ id: task.id, user_id: USER, created_at: task.created_at, version: task.version + 1 });
    });
  });

  it('the owner cannot set version or timestamps on INSERT either', async () => {
    await rolledBack(async (db) => {
      const { rows } = await db.query(
        `insert into api.tasks (user_id, title, version, created_at, updated_at)
         values ($1, 't', 99, '2000-01-01', '2000-01-01') returning *, now() as transaction_start`,
        [USER],
      );
      const task = toTask(rows[0]);
      expect(task.version).toBe(1);
      expect(task.created_at.getTime()).toBeGreaterThanOrEqual(rows[0].transaction_start.getTime() - 1);
      expect(task.updated_at).toEqual(task.created_at);
    });
  });
});

describe('CHECK constraints', () => {
  const title255 = 'x'.repeat(255);

  it.each([
    { name: 'an empty title', title: '', description: null, constraint: 'tasks_title_length' },
    { name: 'a white-space-only title', title: ' \t\n\u00A0\u3000 ', description: null, constraint: 'tasks_title_length' },
    { name: 'a title of 256 characters after trimming', title: `  ${'x'.repeat(256)}  `, description: null, constraint: 'tasks_title_length' },
    { name: 'a description of 10,001 characters', title: 'ok', description: 'd'.repeat(10_001), constraint: 'tasks_description_length' },
  ])('create_task refuses $name (23514 $constraint)', async ({ title, description, constraint }) => {
    await rolledBack(async (db) => {
      const error = await asUser(db, USER, () =>
        errorOf(db, 'select api.create_task($1, $2)', [title, description]),
      );
      expect(error).toMatchObject({ code: '23514', constraint });
    });
  });

  it.each([
    ['a title of 255 characters after trimming', `\t${title255}\n`, null],
    ['a title of 255 multi-byte characters', '✓'.repeat(255), null],
    ['a one-character title', 'x', null],
    ['a description of 10,000 characters', 'ok', 'd'.repeat(10_000)],
    ['an empty description', 'ok', ''],
  ])('create_task accepts %s', async (_, title, description) => {
    await rolledBack(async (db) => {
      const task = await asUser(db, USER, () => callTask(db, 'create_task', { p_title: title, p_description: description }));
      expect(task.title).toBe(title.trim());
      expect(task.description).toBe(description);
    });
  });

  it.each([
    { name: 'update_task with a white-space-only title', fn: 'update_task', args: { p_changes: { title: '   ' } }, constraint: 'tasks_title_length' },
    { name: 'update_task with a 256-character title', fn: 'update_task', args: { p_changes: { title: 'y'.repeat(256) } }, constraint: 'tasks_title_length' },
    {
      name: 'replace_task with a 10,001-character description',
      fn: 'replace_task',
      args: { p_title: 't', p_description: 'd'.repeat(10_001), p_completed: false },
      constraint: 'tasks_description_length',
    },
  ])('$name is refused (23514 $constraint) and changes nothing', async ({ fn, args, constraint }) => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER);
      const { text, values } = taskCall(fn, { p_id: task.id, ...args });
      expect(await asUser(db, USER, () => errorOf(db, text, values))).toMatchObject({ code: '23514', constraint });
      expect(await readTaskAs(db, USER, task.id)).toEqual(task);
    });
  });

  it('a direct UPDATE to an over-long title is refused too', async () => {
    await rolledBack(async (db) => {
      const task = await createTaskAs(db, USER);
      const error = await asUser(db, USER, () =>
        errorOf(db, 'update api.tasks set title = $1 where id = $2', ['z'.repeat(256), task.id]),
      );
      expect(error).toMatchObject({ code: '23514', constraint: 'tasks_title_length' });
    });
  });

  it('still hold with the trigger switched off: an untrimmed title or an empty user_id is refused', async () => {
    await rolledBack(async (db) => {
      await db.query(`set local session_replication_role = replica`);
      expect(await errorOf(db, `insert into api.tasks (user_id, title) values ($1, ' padded ')`, [USER]))
        .toMatchObject({ code: '23514', constraint: 'tasks_title_trimmed' });
      expect(await errorOf(db, `insert into api.tasks (user_id, title) values ('', 'ok')`))
        .toMatchObject({ code: '23514', constraint: 'tasks_user_id_present' });
    });
  });
});

describe('concurrency', () => {
  const TOGGLERS = 20;

  /** How many backends are blocked on a lock while running a statement that contains `tag`. */
  async function lockWaiters(monitor: pg.ClientBase, tag: string): Promise<number> {
    const { rows } = await monitor.query(
      `select count(*)::int as waiting from pg_stat_activity
        where wait_event_type = 'Lock' and position($1 in query) > 0 and pid <> pg_backend_pid()`,
      [tag],
    );
    return rows[0].waiting;
  }

  /**
   * Waits until all toggles are blocked behind the lock, or, behind a pooler
   * that runs fewer at a time (TEST_PGBOUNCER=1), until at least two are and
   * no more arrive for half a second.
   */
  async function waitForQueue(monitor: pg.ClientBase, tag: string) {
    const deadline = Date.now() + 15_000;
    let seen = 0;
    let stableSince = Date.now();
    for (;;) {
      const waiting = await lockWaiters(monitor, tag);
      if (waiting === TOGGLERS) return;
      if (waiting !== seen) [seen, stableSince] = [waiting, Date.now()];
      if (seen >= 2 && Date.now() - stableSince > 500) return;
      if (Date.now() > deadline) throw new Error(`only ${seen} of ${TOGGLERS} toggles queued on the row lock`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it(`${TOGGLERS} concurrent toggles from separate committed transactions flip the task exactly ${TOGGLERS} times`, async () => {
    const sub = uniqueSub('toggler');
    const task = await committedAsUser(sub, (db) => callTask(db, 'create_task', { p_title: 'contended' }));
    // A comment in the statement text identifies this test's toggles in pg_stat_activity.
    const tag = `concurrent-toggle-${task.id}`;
    const owner = await connect();
    const monitor = await connect();
    const togglers: pg.Client[] = [];
    let outcomes: Promise<PromiseSettledResult<Task>[]> | undefined;
    try {
      // The owner holds the row lock until the toggles have queued behind it,
      // so they really run at the same time.
      await owner.query('begin');
      await owner.query('select 1 from api.tasks where id = $1 for update', [task.id]);

      for (let i = 0; i < TOGGLERS; i++) togglers.push(await connect(appUrl()));
      outcomes = Promise.allSettled(
        togglers.map(async (client) => {
          await client.query('begin');
          await becomeUser(client, sub);
          const { rows } = await client.query(`select * from api.toggle_task($1) /* ${tag} */`, [task.id]);
          await client.query('commit');
          return toTask(rows[0]);
        }),
      );

      await waitForQueue(monitor, tag);
      await owner.query('commit');

      const toggles = (await outcomes).map((result) => {
        if (result.status === 'rejected') throw result.reason;
        return result.value;
      });
      expect(toggles.map((t) => t.version).sort((a, b) => a - b)).toEqual(
        Array.from({ length: TOGGLERS }, (_, i) => i + 2),
      );
      // Each toggle saw the value the previous one committed: odd versions are
      // open, even versions completed.
      for (const toggled of toggles) expect(toggled.completed).toBe(toggled.version % 2 === 0);

      const { rows } = await owner.query('select completed, version from api.tasks where id = $1', [task.id]);
      expect(rows).toEqual([{ completed: false, version: String(1 + TOGGLERS) }]);
    } finally {
      await owner.query('rollback').catch(() => {});
      await outcomes;
      await Promise.all(togglers.map((client) => client.end()));
      await owner.query('delete from api.tasks where user_id = $1', [sub]);
      await Promise.all([owner.end(), monitor.end()]);
    }
  });
});
