// Neon's Data API on the same database as the gateway. The Data API is
// PostgREST: per request it logs in with its own role, switches to
// `authenticated` for a valid JWT (to `anonymous` without one) and publishes
// the token's claims in request.jwt.claims, all transaction-local, together
// with request.method, request.path and request.headers; it serves tables of
// the exposed schema (here `api`) as /table and functions as /rpc/<name>.
// These tests make exactly those settings and run the SQL PostgREST would,
// next to the real gateway, and check both see and refuse the same things.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withUser } from '../src/db/database.js';
import { committedOn, ownerUrl, uniqueSub, withClient } from './support/database.js';
import { bearer, createTestApp, json, tokenFor, type TestApp } from './support/http.js';

/** A login role shaped like PostgREST's authenticator, for the Data API. */
const dataApiRole = `data_api_login_${randomBytes(4).toString('hex')}`;
const dataApiPassword = randomBytes(12).toString('hex');
let testApp: TestApp;

async function owner<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return withClient(ownerUrl(), fn);
}

beforeAll(async () => {
  await owner(async (db) => {
    await db.query(`create role ${dataApiRole} login noinherit password '${dataApiPassword}'`);
    await db.query(`grant authenticated, anonymous to ${dataApiRole}`);
  });
  testApp = await createTestApp();
});

afterAll(async () => {
  await testApp?.close();
  await owner(async (db) => {
    await db.query(`drop owned by ${dataApiRole}`).catch(() => {});
    await db.query(`drop role if exists ${dataApiRole}`);
  });
});

/**
 * One Data API request: a transaction as PostgREST opens it, with the role
 * and settings it makes (claims = null: no Authorization header).
 */
async function dataApi<T>(
  claims: Record<string, unknown> | null,
  request: { method: string; path: string },
  fn: (db: pg.Client) => Promise<T>,
): Promise<T> {
  const setUp = (client: pg.Client) =>
    client.query(
      `select set_config('search_path', 'api', true),
              set_config('role', $1, true),
              set_config('request.jwt.claims', $2, true),
              set_config('request.method', $3, true),
              set_config('request.path', $4, true),
              set_config('request.headers', '{"accept":"application/json"}', true)`,
      [claims ? 'authenticated' : 'anonymous', claims ? JSON.stringify(claims) : '', request.method, request.path],
    );
  return committedOn(withUser(ownerUrl(), dataApiRole, dataApiPassword), setUp, fn);
}

const claimsOf = (sub: string) => ({ sub, role: 'authenticated', exp: Math.floor(Date.now() / 1000) + 600 });

describe('the Data API and the gateway on one database', () => {
  it('a task inserted through the Data API (POST /tasks) is the owner\'s through the gateway, and invisible to another user', async () => {
    const alice = uniqueSub('alice');
    const { rows } = await dataApi(claimsOf(alice), { method: 'POST', path: '/tasks' }, (db) =>
      db.query(`insert into api.tasks (title) values ('from the Data API') returning id, user_id`),
    );
    expect(rows[0].user_id).toBe(alice);
    const mine = await testApp.app.inject({ method: 'GET', url: `/api/tasks/${rows[0].id}`, headers: bearer(await tokenFor(alice)) });
    expect(mine.statusCode).toBe(200);
    expect(json(mine).title).toBe('from the Data API');
    const theirs = await testApp.app.inject({ method: 'GET', url: `/api/tasks/${rows[0].id}`, headers: bearer(await tokenFor(uniqueSub('bob'))) });
    expect(theirs.statusCode).toBe(403);
  });

  it("a task made through the gateway: the Data API shows it to its owner only; another user's PATCH and DELETE change nothing", async () => {
    const alice = uniqueSub('alice');
    const bob = uniqueSub('bob');
    const created = await testApp.app.inject({ method: 'POST', url: '/api/tasks', headers: bearer(await tokenFor(alice)), payload: { title: 'via the gateway' } });
    const id = json(created).id;

    const forAlice = await dataApi(claimsOf(alice), { method: 'GET', path: '/tasks' }, (db) => db.query('select id, title from api.tasks'));
    expect(forAlice.rows).toEqual([{ id, title: 'via the gateway' }]);
    const forBob = await dataApi(claimsOf(bob), { method: 'GET', path: '/tasks' }, (db) => db.query('select id from api.tasks'));
    expect(forBob.rows).toEqual([]);
    const patched = await dataApi(claimsOf(bob), { method: 'PATCH', path: '/tasks' }, (db) =>
      db.query(`update api.tasks set title = 'taken' where id = $1`, [id]),
    );
    expect(patched.rowCount).toBe(0);
    const deleted = await dataApi(claimsOf(bob), { method: 'DELETE', path: '/tasks' }, (db) => db.query('delete from api.tasks where id = $1', [id]));
    expect(deleted.rowCount).toBe(0);
    // An insert claiming another user's id is refused by the policy's WITH CHECK (or the column grant).
    await expect(
      dataApi(claimsOf(bob), { method: 'POST', path: '/tasks' }, (db) => db.query(`insert into api.tasks (title, user_id) values ('x', $1)`, [alice])),
    ).rejects.toMatchObject({ code: '42501' });

    const after = await testApp.app.inject({ method: 'GET', url: `/api/tasks/${id}`, headers: bearer(await tokenFor(alice)) });
    expect(json(after).title).toBe('via the gateway');
  });

  it('the functions the Data API exposes as RPC behave as through the gateway: /rpc/create_task creates, /rpc/get_task for another user is 42501 (403)', async () => {
    const alice = uniqueSub('alice');
    const { rows } = await dataApi(claimsOf(alice), { method: 'POST', path: '/rpc/create_task' }, (db) =>
      db.query(`select id, user_id from api.create_task(p_title => $1)`, ['by RPC']),
    );
    expect(rows[0].user_id).toBe(alice);
    await expect(
      dataApi(claimsOf(uniqueSub('bob')), { method: 'POST', path: '/rpc/get_task' }, (db) => db.query('select * from api.get_task($1)', [rows[0].id])),
    ).rejects.toMatchObject({ code: '42501' });
  });

  it('without a token the Data API runs as anonymous, which reaches nothing in schema api (tables or RPC)', async () => {
    for (const text of ['select * from api.tasks', `select * from api.create_task('x')`, 'select * from api.idempotency_keys']) {
      await expect(dataApi(null, { method: 'GET', path: '/tasks' }, (db) => db.query(text))).rejects.toMatchObject({ code: '42501' });
    }
  });

  it('anonymous exists as the migrations leave it: no login, no inheritance, no privileged attribute, a member of nothing', async () => {
    const { rows } = await owner((db) =>
      db.query(
        `select rolcanlogin, rolinherit, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb,
                (select count(*)::int from pg_auth_members where member = r.oid) as memberships
           from pg_roles r where rolname = 'anonymous'`,
      ),
    );
    expect(rows).toEqual([
      { rolcanlogin: false, rolinherit: false, rolsuper: false, rolbypassrls: false, rolcreaterole: false, rolcreatedb: false, memberships: 0 },
    ]);
  });
});
