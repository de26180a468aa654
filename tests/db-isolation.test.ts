// Data isolation as the database enforces it, whatever the gateway does:
// every test acts through SQL as a role the gateway can reach, with the
// claims it would set, inside a transaction that is rolled back.
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  appUrl,
  asUser,
  becomeRole,
  becomeUser,
  connect,
  callTask,
  createTaskAs,
  errorOf,
  readTaskAs,
  rolledBack,
  rolledBackOn,
  setClaims,
  sqlstateOf,
  taskCall,
  toTask,
  uniqueSub,
  type Task,
} from './support/database.js';

// Unique subs: other test files commit tasks to the same database.
const ALICE = uniqueSub('alice');
const BOB = uniqueSub('bob');
// Alice's data, which must never show up in anything Bob gets back.
const SECRET_TITLE = 'alice secret title 7f3a';
const SECRET_DESCRIPTION = 'alice secret description 91c2';

async function createAlicesTask(db: pg.ClientBase): Promise<Task> {
  return createTaskAs(db, ALICE, SECRET_TITLE, SECRET_DESCRIPTION);
}

/** Every task function Bob could point at Alice's task id. */
const functionCalls: Array<[string, (id: string) => Record<string, unknown>]> = [
  ['get_task', (id) => ({ p_id: id })],
  ['replace_task', (id) => ({ p_id: id, p_title: 'bob was here', p_description: null, p_completed: true })],
  ['update_task', (id) => ({ p_id: id, p_changes: { title: 'bob was here' } })],
  ['toggle_task', (id) => ({ p_id: id })],
  ['set_task_completed', (id) => ({ p_id: id, p_completed: true })],
  ['delete_task', (id) => ({ p_id: id })],
];

describe("row-level security on api.tasks: one user and another's rows", () => {
  it('shows a user only their own tasks', async () => {
    await rolledBack(async (db) => {
      await asUser(db, ALICE, () => db.query(`select api.create_task('alice task')`));
      await asUser(db, BOB, () => db.query(`select api.create_task('bob task')`));

      const seenByBob = await asUser(db, BOB, () => db.query('select title, user_id from api.tasks'));
      expect(seenByBob.rows).toEqual([{ title: 'bob task', user_id: BOB }]);
      const seenByAlice = await asUser(db, ALICE, () => db.query('select title, user_id from api.tasks'));
      expect(seenByAlice.rows).toEqual([{ title: 'alice task', user_id: ALICE }]);
    });
  });

  it('gives the owner their own task through api.get_task (the control for the refusals below)', async () => {
    await rolledBack(async (db) => {
      const task = await createAlicesTask(db);
      const got = await asUser(db, ALICE, () => callTask(db, 'get_task', { p_id: task.id }));
      expect(got).toEqual(task);
    });
  });

  it("does not let a user select another user's task by id", async () => {
    await rolledBack(async (db) => {
      const task = await createAlicesTask(db);
      const { rowCount } = await asUser(db, BOB, () => db.query('select * from api.tasks where id = $1', [task.id]));
      expect(rowCount).toBe(0);
    });
  });

  it.each([
    ['update', `update api.tasks set title = 'bob was here', description = null where id = $1`],
    ['toggle', 'update api.tasks set completed = not completed where id = $1'],
    ['delete', 'delete from api.tasks where id = $1'],
    ['update without WHERE', `update api.tasks set completed = true, title = 'bob was here'`],
    ['delete without WHERE', 'delete from api.tasks'],
  ])("a direct %s by another user affects 0 of the owner's rows and leaves them unchanged", async (_, statement) => {
    await rolledBack(async (db) => {
      const task = await createAlicesTask(db);

      const { rowCount } = await asUser(db, BOB, () => db.query(statement, statement.includes('$1') ? [task.id] : []));

      expect(rowCount).toBe(0);
      expect(await readTaskAs(db, ALICE, task.id)).toEqual(task);
    });
  });

  it.each(functionCalls)("api.%s refuses another user's task with 42501 and reveals none of its data", async (fn, args) => {
    await rolledBack(async (db) => {
      const task = await createAlicesTask(db);

      const { text, values } = taskCall(fn, args(task.id));
      const error = await asUser(db, BOB, () => errorOf(db, text, values));

      expect(error?.code).toBe('42501');
      const revealed = JSON.stringify(error);
      expect(revealed).not.toContain(SECRET_TITLE);
      expect(revealed).not.toContain(SECRET_DESCRIPTION);
      expect(revealed).not.toContain(ALICE);
      expect(await readTaskAs(db, ALICE, task.id)).toEqual(task);
    });
  });

  it.each(functionCalls.filter(([fn]) => fn !== 'get_task'))(
    "api.%s answers 42501, not PT412, when another user's task is sent with an If-Match",
    async (fn, args) => {
      await rolledBack(async (db) => {
        const task = await createAlicesTask(db);
        for (const ifMatch of [[task.version], [task.version + 1]]) {
          const { text, values } = taskCall(fn, { ...args(task.id), p_if_match: ifMatch });
          expect(await asUser(db, BOB, () => sqlstateOf(db, text, values))).toBe('42501');
        }
        expect(await readTaskAs(db, ALICE, task.id)).toEqual(task);
      });
    },
  );

  it('refuses an insert that names user_id (column privilege, 42501), even for the caller itself', async () => {
    await rolledBack(async (db) => {
      await asUser(db, BOB, async () => {
        for (const owner of [ALICE, BOB]) {
          const error = await errorOf(db, `insert into api.tasks (user_id, title) values ($1, 'planted')`, [owner]);
          expect(error?.code).toBe('42501');
          expect(error?.message).toMatch(/permission denied/);
        }
      });
      expect((await asUser(db, ALICE, () => db.query('select * from api.tasks'))).rowCount).toBe(0);
    });
  });

  it("a plain insert is always owned by the caller's sub", async () => {
    await rolledBack(async (db) => {
      const { rows } = await asUser(db, BOB, () =>
        db.query(`insert into api.tasks (title) values ('mine') returning user_id`),
      );
      expect(rows).toEqual([{ user_id: BOB }]);
    });
  });

  it("refuses an update that changes user_id, on the caller's own task and on another user's", async () => {
    await rolledBack(async (db) => {
      const alices = await createAlicesTask(db);
      const bobs = await createTaskAs(db, BOB, 'bob task');
      await asUser(db, BOB, async () => {
        expect(await sqlstateOf(db, 'update api.tasks set user_id = $1 where id = $2', [BOB, alices.id])).toBe('42501');
        expect(await sqlstateOf(db, 'update api.tasks set user_id = $1 where id = $2', [ALICE, bobs.id])).toBe('42501');
      });
      expect(await readTaskAs(db, ALICE, alices.id)).toEqual(alices);
      expect(await readTaskAs(db, BOB, bobs.id)).toEqual(bobs);
    });
  });
});

describe('a transaction without claims sees nothing and changes nothing', () => {
  /** Alice's task, inserted by the owner so that no claims are ever set on the connection. */
  async function insertAlicesTaskAsOwner(db: pg.ClientBase): Promise<Task> {
    const { rows } = await db.query(
      `insert into api.tasks (user_id, title) values ($1, $2) returning *`,
      [ALICE, SECRET_TITLE],
    );
    return toTask(rows[0]);
  }

  async function everyTaskAsOwner(db: pg.ClientBase): Promise<Task[]> {
    const { rows } = await db.query('select * from api.tasks order by id');
    return rows.map(toTask);
  }

  /** A connection whose earlier transaction set claims transaction-locally, as a pooled one is. */
  async function onReusedConnection(fn: (db: pg.Client) => Promise<void>) {
    const db = await connect();
    try {
      await db.query('begin');
      await becomeUser(db, 'previous-request-user');
      await db.query('commit');
      await db.query('begin');
      await fn(db);
    } finally {
      await db.query('rollback').catch(() => {});
      await db.end();
    }
  }

  const scenarios: Array<[string, (fn: (db: pg.Client) => Promise<void>) => Promise<void>, string | null]> = [
    ["claims read back as '' (a pooled connection after a request)", onReusedConnection, ''],
    ['claims never set in the session', (fn) => rolledBack(fn), null],
  ];

  it.each(scenarios)('as authenticated with %s', async (_, run, expectedClaims) => {
    await run(async (db) => {
      // One snapshot for the whole test, so that tasks other test files commit
      // meanwhile do not show up in the before/after comparison.
      await db.query('set transaction isolation level repeatable read');
      const task = await insertAlicesTaskAsOwner(db);
      const before = await everyTaskAsOwner(db);
      expect(before).toContainEqual(task);

      await becomeRole(db, 'authenticated');
      const { rows } = await db.query(`select current_setting('request.jwt.claims', true) as claims, current_user`);
      expect(rows).toEqual([{ claims: expectedClaims, current_user: 'authenticated' }]);

      expect((await db.query('select * from api.tasks')).rowCount).toBe(0);
      expect((await db.query(`update api.tasks set title = 'changed'`)).rowCount).toBe(0);
      expect((await db.query('update api.tasks set completed = not completed')).rowCount).toBe(0);
      expect((await db.query('delete from api.tasks')).rowCount).toBe(0);
      expect(await sqlstateOf(db, 'select api.get_task($1)', [task.id])).toBe('42501');

      // user_id defaults to NULL; the insert policy's WITH CHECK (evaluated
      // before NOT NULL) refuses the row.
      const error = await errorOf(db, `select api.create_task('orphan')`);
      expect(error?.code).toBe('42501');
      expect(error?.message).toMatch(/row-level security/);

      await db.query('reset role');
      expect(await everyTaskAsOwner(db)).toEqual(before);
    });
  });
});

describe('api.current_user_id()', () => {
  it.each([
    { name: 'claims never set', claims: undefined, expected: null },
    { name: "claims ''", claims: '', expected: null },
    { name: 'claims without sub', claims: '{"role":"authenticated"}', expected: null },
    { name: 'an empty-string sub', claims: '{"sub":"","role":"authenticated"}', expected: null },
    { name: 'a JSON null sub', claims: '{"sub":null}', expected: null },
    { name: 'a sub', claims: '{"sub":"user-42","role":"authenticated"}', expected: 'user-42' },
  ])('returns $expected for $name', async ({ claims, expected }) => {
    await rolledBack(async (db) => {
      await becomeRole(db, 'authenticated');
      if (claims !== undefined) await setClaims(db, claims);
      const { rows } = await db.query('select api.current_user_id() as id');
      expect(rows[0].id).toBe(expected);
    });
  });
});

describe('roles the gateway can reach', () => {
  it('anon cannot read api.tasks or call the task functions', async () => {
    await rolledBack(async (db) => {
      await createAlicesTask(db);
      await db.query('reset role');
      await becomeUser(db, ALICE, 'anon');
      expect(await sqlstateOf(db, 'select * from api.tasks')).toBe('42501');
      expect(await sqlstateOf(db, `select api.create_task('anon task')`)).toBe('42501');
      expect(await sqlstateOf(db, 'select api.current_user_id()')).toBe('42501');
    });
  });

  it('authenticator without SET ROLE cannot read api.tasks or call api.create_task', async () => {
    await rolledBackOn(appUrl(), async (db) => {
      const { rows } = await db.query('select current_user, session_user');
      expect(rows).toEqual([{ current_user: 'authenticator', session_user: 'authenticator' }]);
      await setClaims(db, JSON.stringify({ sub: ALICE }));

      expect(await sqlstateOf(db, 'select * from api.tasks')).toBe('42501');
      expect(await sqlstateOf(db, `select api.create_task('from authenticator')`)).toBe('42501');
      expect(await sqlstateOf(db, 'select api.task_exists(gen_random_uuid())')).toBe('42501');
    });
  });

  it('authenticator can become authenticated and anon', async () => {
    await rolledBackOn(appUrl(), async (db) => {
      for (const role of ['authenticated', 'anon']) {
        expect(await sqlstateOf(db, `set local role ${role}`)).toBeUndefined();
        const { rows } = await db.query('select current_user');
        expect(rows[0].current_user).toBe(role);
        await db.query('reset role');
      }
    });
  });

  it.each(['task_probe', 'postgres'])('authenticator cannot SET ROLE %s', async (role) => {
    await rolledBackOn(appUrl(), async (db) => {
      expect(await sqlstateOf(db, `set local role ${role}`)).toBe('42501');
      expect(await sqlstateOf(db, `select set_config('role', $1, true)`, [role])).toBe('42501');
      const { rows } = await db.query('select current_user');
      expect(rows[0].current_user).toBe('authenticator');
    });
  });

  it('authenticated cannot truncate api.tasks or switch its row-level security off', async () => {
    await rolledBack(async (db) => {
      const task = await createAlicesTask(db);
      await asUser(db, BOB, async () => {
        expect(await sqlstateOf(db, 'truncate api.tasks')).toBe('42501');
        expect(await sqlstateOf(db, 'alter table api.tasks disable row level security')).toBe('42501');
      });
      expect(await readTaskAs(db, ALICE, task.id)).toEqual(task);
    });
  });
});
