import { describe, expect, it } from 'vitest';
import { asUser, rolledBack, sqlstateOf } from './support/database.js';

describe('row-level security on api.tasks', () => {
  it('shows a user only their own tasks', async () => {
    await rolledBack(async (db) => {
      await asUser(db, 'alice', () => db.query(`select api.create_task('alice task')`));
      await asUser(db, 'bob', () => db.query(`select api.create_task('bob task')`));

      const seenByBob = await asUser(db, 'bob', () => db.query('select title, user_id from api.tasks'));
      expect(seenByBob.rows).toEqual([{ title: 'bob task', user_id: 'bob' }]);
    });
  });

  it("refuses another user's task in every function with 42501", async () => {
    await rolledBack(async (db) => {
      const { rows } = await asUser(db, 'alice', () => db.query(`select id from api.create_task('mine')`));
      const id = rows[0].id;
      await asUser(db, 'bob', async () => {
        expect(await sqlstateOf(db, 'select api.get_task($1)', [id])).toBe('42501');
        expect(await sqlstateOf(db, 'select api.toggle_task($1)', [id])).toBe('42501');
        expect(await sqlstateOf(db, 'select api.delete_task($1)', [id])).toBe('42501');
      });
    });
  });
});
