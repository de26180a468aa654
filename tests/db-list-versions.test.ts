// api.task_list_versions in SQL: the per-user list version the list's ETag is
// made of. Bumped by every write that changes a user's tasks (whoever writes,
// through the functions or straight into the table), not by a write that
// changes nothing; readable by its user only; writable by nobody a request
// runs as.
import { describe, expect, it } from 'vitest';
import { asUser, callTask, createTaskAs, errorOf, rolledBack, uniqueSub } from './support/database.js';

const version = async (db: Parameters<Parameters<typeof rolledBack>[0]>[0], sub: string) =>
  asUser(db, sub, async () => Number((await db.query('select api.task_list_version() as v')).rows[0].v));

describe('api.task_list_versions', () => {
  it('is 0 for a user who never wrote, and moves on every change of their tasks only', async () => {
    await rolledBack(async (db) => {
      const alice = uniqueSub('alice');
      const bob = uniqueSub('bob');
      expect(await version(db, alice)).toBe(0);

      const task = await createTaskAs(db, alice);
      const seen = [await version(db, alice)];
      expect(seen[0]).toBeGreaterThan(0);
      const bobBefore = await version(db, bob);

      const writes: (() => Promise<unknown>)[] = [
        () => callTask(db, 'update_task', { p_id: task.id, p_changes: { title: 'renamed' } }),
        () => callTask(db, 'toggle_task', { p_id: task.id }),
        () => db.query(`update api.tasks set description = 'direct' where id = $1`, [task.id]),
        () => db.query(`insert into api.tasks (title) values ('direct insert')`),
        () => callTask(db, 'delete_task', { p_id: task.id }),
      ];
      for (const write of writes) {
        await asUser(db, alice, write);
        const now = await version(db, alice);
        expect(seen).not.toContain(now);
        seen.push(now);
      }
      expect(await version(db, bob)).toBe(bobBefore);
    });
  });

  it('does not move for a write that changes nothing', async () => {
    await rolledBack(async (db) => {
      const alice = uniqueSub('alice');
      const task = await createTaskAs(db, alice, 'same', 'same');
      const before = await version(db, alice);
      await asUser(db, alice, () => callTask(db, 'update_task', { p_id: task.id, p_changes: { title: 'same', description: 'same' } }));
      await asUser(db, alice, () => callTask(db, 'set_task_completed', { p_id: task.id, p_completed: false }));
      await asUser(db, alice, () => db.query(`update api.tasks set title = title where id = $1`, [task.id]));
      expect(await version(db, alice)).toBe(before);
    });
  });

  it("moves when the owner (no claims) changes a user's tasks", async () => {
    await rolledBack(async (db) => {
      const alice = uniqueSub('alice');
      const task = await createTaskAs(db, alice);
      const before = await version(db, alice);
      await db.query('reset role');
      await db.query(`select set_config('request.jwt.claims', '', true)`);
      await db.query(`update api.tasks set completed = true where id = $1`, [task.id]);
      expect(await version(db, alice)).toBeGreaterThan(before);
    });
  });

  it('a user reads only their own row and can write none', async () => {
    await rolledBack(async (db) => {
      const alice = uniqueSub('alice');
      const bob = uniqueSub('bob');
      await createTaskAs(db, alice);
      await createTaskAs(db, bob);
      const rows = await asUser(db, alice, async () => (await db.query('select user_id from api.task_list_versions')).rows);
      expect(rows).toEqual([{ user_id: alice }]);
      for (const statement of [
        `update api.task_list_versions set version = 1`,
        `insert into api.task_list_versions (user_id, version) values ('${alice}', 1)`,
        `delete from api.task_list_versions`,
        `select nextval('api.task_list_version_seq')`,
      ]) {
        const error = await asUser(db, alice, () => errorOf(db, statement));
        expect(error?.code, statement).toBe('42501');
      }
    });
  });

  it('has row-level security enabled and forced', async () => {
    await rolledBack(async (db) => {
      const { rows } = await db.query(
        `select relrowsecurity, relforcerowsecurity from pg_class where oid = 'api.task_list_versions'::regclass`,
      );
      expect(rows).toEqual([{ relrowsecurity: true, relforcerowsecurity: true }]);
    });
  });
});
