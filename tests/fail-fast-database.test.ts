// A gateway pointed at a database it can never serve from refuses to start,
// with one paragraph naming the cause and the fix; the same checks back
// /health/ready; and once running, a permanent database failure (wrong
// password, unknown database, schema not migrated, a role that cannot become
// `authenticated`) is a 500 "misconfigured" logged with its cause, never a
// 503 "retry shortly" after seconds of retries, nor a 403.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withDatabase, withUser } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';
import { API_ROLES } from './support/api-roles.js';
import { withClient } from './support/database.js';
import { bearer, createTestApp, expectProblem, newUser, tokenFor, type TestApp } from './support/http.js';
import { runServerUntilExit, type ServerExit } from './support/server-process.js';

const AUTHENTICATOR_PASSWORD = 'authenticator-test-password';
const suffix = randomBytes(4).toString('hex');
/** A database created and owned by a non-superuser (as on Neon), migrated step by step below. */
const ownerRole = `task_api_ff_owner_${suffix}`;
const ownerPassword = randomBytes(12).toString('hex');
const databaseName = `task_api_ff_${suffix}`;
/** A login role with no privileges at all: it may not become `authenticated`. */
const strangerRole = `task_api_ff_stranger_${suffix}`;
/** A member of authenticated allowed no connection at all: every attempt is 53300, too many connections. */
const fullRole = `task_api_ff_full_${suffix}`;
/** A login role with BYPASSRLS (and nothing else). */
const bypassRole = `task_api_ff_bypass_${suffix}`;

const serverUrl = () => inject('serverUrl');
/** The direct (never pooled) URL of a database in the test server, as `user`. */
const urlAs = (database: string, user: string, password: string) => withUser(withDatabase(serverUrl(), database), user, password);
const testDatabase = () => new URL(inject('ownerUrl')).pathname.slice(1);

async function admin<T>(fn: (client: pg.Client) => Promise<T>, url = serverUrl()): Promise<T> {
  return withClient(url, fn);
}

/** Does the test server check passwords (the embedded one does; a trust-auth server does not)? */
let passwordsChecked = false;

beforeAll(async () => {
  await admin(async (db) => {
    const major = Number((await db.query('show server_version_num')).rows[0].server_version_num.slice(0, 2));
    await db.query(`create role ${ownerRole} login password '${ownerPassword}' createrole createdb nosuperuser nobypassrls inherit`);
    if (major >= 16) {
      // What CREATE ROLE would have given the creator of the API roles on 16+.
      for (const role of API_ROLES) { // cluster-wide, so they already exist here
        await db.query(`grant ${role} to ${ownerRole} with admin option, inherit false, set false`);
      }
    }
    await db.query(`create database ${databaseName} owner ${ownerRole}`);
    await db.query(`create role ${strangerRole} login password 'stranger-password'`);
    await db.query(`create role ${fullRole} login password 'full-password' connection limit 0`);
    await db.query(`create role ${bypassRole} login password 'bypass-password' bypassrls`);
  });
  passwordsChecked = await admin(async () => false, urlAs(testDatabase(), 'authenticator', 'not-the-password')).catch(() => true);
});

afterAll(async () => {
  await admin(async (db) => {
    await db.query(`drop database if exists ${databaseName} with (force)`);
    await db.query(`drop owned by ${ownerRole}`).catch(() => {});
    await db.query(`drop role if exists ${ownerRole}`);
    await db.query(`drop role if exists ${strangerRole}`);
    await db.query(`drop role if exists ${fullRole}`);
    await db.query(`drop role if exists ${bypassRole}`);
  });
});

/** The start-up failure of a gateway at DATABASE_URL=url. */
async function startFails(url: string, env: Record<string, string> = {}): Promise<ServerExit> {
  const exit = await runServerUntilExit({ DATABASE_URL: url, DB_CONNECT_RETRY_MS: '60000', ...env });
  const output = `exit ${exit.code}\nstdout: ${exit.stdout}\nstderr: ${exit.stderr}`;
  expect(exit.code, output).not.toBe(0);
  expect(exit.code, output).not.toBeNull();
  expect(exit.stdout + exit.stderr, output).not.toMatch(/listening on/i);
  // One paragraph, not a crash.
  expect(exit.stderr.trim().split('\n'), output).toHaveLength(1);
  expect(exit.stderr, output).toMatch(/^task-api: cannot start: /);
  expect(exit.stderr, output).not.toMatch(/\n\s+at /);
  // The password in DATABASE_URL is never echoed.
  expect(exit.stderr).not.toContain(ownerPassword);
  expect(exit.stderr).not.toContain(AUTHENTICATOR_PASSWORD);
  return exit;
}

/** A test app (inject) on `url`, its readiness, and its answer to one task request. */
async function withApp<T>(url: string, fn: (app: TestApp) => Promise<T>): Promise<T> {
  const app = await createTestApp({ appUrl: url });
  try {
    return await fn(app);
  } finally {
    await app.close();
  }
}

async function readiness(app: TestApp) {
  const response = await app.app.inject({ url: '/health/ready' });
  return { response, body: response.json() as { status?: number; detail?: string } };
}

function logText(app: TestApp, level: number): string {
  return app.logs
    .filter((line) => line.level === level)
    .map((line) => String(line.msg))
    .join('\n');
}

describe('a database that was never migrated', () => {
  // The database exists (created empty by its owner); nothing was migrated.
  const url = () => urlAs(databaseName, 'authenticator', AUTHENTICATOR_PASSWORD);

  it('npm start exits non-zero saying so and naming npm run db:migrate', async () => {
    const exit = await startFails(url());
    expect(exit.stderr).toMatch(/never migrated/);
    expect(exit.stderr).toContain('npm run db:migrate');
  });

  it('/health/ready is 503 naming the check, the log says why; a task request is 500 misconfigured, logged at error', async () => {
    await withApp(url(), async (app) => {
      const { response, body } = await readiness(app);
      expectProblem(response, 503);
      expect(body.detail).toContain('"migrations"');
      expect(response.headers['retry-after']).toBeUndefined();
      expect(logText(app, 50)).toMatch(/readiness check "migrations" failed: .*never migrated.*npm run db:migrate/);

      const token = await tokenFor(newUser('unmigrated'));
      const task = await app.app.inject({ url: '/api/tasks', headers: bearer(token) });
      const problem = expectProblem(task, 500, '/problems/misconfigured');
      expect(problem.detail).not.toMatch(/retry shortly/i);
      expect(task.headers['retry-after']).toBeUndefined();
      expect(logText(app, 50)).toMatch(/database misconfigured: .*(3F000|42P01|42883).*npm run db:migrate/);
    });
  });
});

describe('a database migrated by an older build (the newest migration not recorded)', () => {
  // Forgetting the newest version is what an older build's migration run
  // leaves behind, as the checks see it (a real rollback could need more
  // than the owner's rights, e.g. to drop a role).
  let newest: string;
  beforeAll(async () => {
    const ownerUrl = urlAs(databaseName, ownerRole, ownerPassword);
    await migrate(ownerUrl);
    newest = await admin(
      async (db) => (await db.query('delete from public.schema_migrations where version = (select max(version) from public.schema_migrations) returning version')).rows[0].version,
      ownerUrl,
    );
  }, 120_000);
  afterAll(async () => {
    await admin((db) => db.query('insert into public.schema_migrations (version) values ($1)', [newest]), urlAs(databaseName, ownerRole, ownerPassword));
  });

  it('npm start exits non-zero naming the missing migration and npm run db:migrate; readiness is 503 "migrations"', async () => {
    const url = urlAs(databaseName, 'authenticator', AUTHENTICATOR_PASSWORD);
    const exit = await startFails(url);
    expect(exit.stderr).toMatch(/lacks 1 of this build's migrations/);
    expect(exit.stderr).toContain(newest);
    expect(exit.stderr).toContain('npm run db:migrate');
    await withApp(url, async (app) => {
      const { response, body } = await readiness(app);
      expectProblem(response, 503);
      expect(body.detail).toContain('"migrations"');
    });
  });
});

describe("the schema owner's URL (a non-superuser, as on Neon) as DATABASE_URL", () => {
  const url = () => urlAs(databaseName, ownerRole, ownerPassword);
  beforeAll(async () => {
    await migrate(url());
  }, 120_000);

  it('the fully migrated database passes as authenticator: readiness 200', async () => {
    await withApp(urlAs(databaseName, 'authenticator', AUTHENTICATOR_PASSWORD), async (app) => {
      const { response } = await readiness(app);
      expect(response.statusCode, response.body).toBe(200);
    });
  });

  it("npm start exits non-zero: the role owns objects in api, use authenticator's URL", async () => {
    const exit = await startFails(url());
    expect(exit.stderr).toContain(`"${ownerRole}"`);
    expect(exit.stderr).toMatch(/owns schema api/);
    expect(exit.stderr).toMatch(/authenticator's URL/);
  });

  it('a running gateway on it: readiness 503 "owner", and task routes are 500 misconfigured, not 403', async () => {
    await withApp(url(), async (app) => {
      const { response, body } = await readiness(app);
      expectProblem(response, 503);
      expect(body.detail).toContain('"owner"');
      const token = await tokenFor(newUser('owner-url'));
      for (const request of [
        { url: '/api/tasks' },
        { url: '/api/tasks', method: 'POST' as const, payload: { title: 'x' } },
        { url: '/api/tasks/8d0f1c0e-6b1a-4a57-9a43-2f6f4f0b8a2e' },
      ]) {
        const answer = await app.app.inject({ ...request, headers: bearer(token) });
        expectProblem(answer, 500, '/problems/misconfigured');
      }
      expect(logText(app, 50)).toMatch(/cannot become the role authenticated.*authenticator's URL/);
    });
  });
});

describe('a login role that may not become authenticated', () => {
  const url = () => urlAs(testDatabase(), strangerRole, 'stranger-password');

  it('npm start exits non-zero naming the role and the fix', async () => {
    const exit = await startFails(url());
    expect(exit.stderr).toContain(`"${strangerRole}" cannot become the role authenticated`);
    expect(exit.stderr).toMatch(/authenticator's URL/);
  });

  it('readiness is 503 "set-role"; a task request is 500 misconfigured, not 403', async () => {
    await withApp(url(), async (app) => {
      const { response, body } = await readiness(app);
      expectProblem(response, 503);
      expect(body.detail).toContain('"set-role"');
      const answer = await app.app.inject({ url: '/api/tasks', headers: bearer(await tokenFor(newUser('stranger'))) });
      expectProblem(answer, 500, '/problems/misconfigured');
    });
  });
});

describe('a role with BYPASSRLS', () => {
  it('npm start exits non-zero: row-level security does not apply to it', async () => {
    const exit = await startFails(urlAs(testDatabase(), bypassRole, 'bypass-password'));
    expect(exit.stderr).toContain(`"${bypassRole}", which has BYPASSRLS`);
    expect(exit.stderr).toMatch(/authenticator's URL/);
  });
});

describe('a superuser URL', () => {
  it('npm start exits non-zero: row-level security does not apply to a superuser', async () => {
    const exit = await startFails(inject('ownerUrl'));
    expect(exit.stderr).toMatch(/a superuser/);
    expect(exit.stderr).toMatch(/authenticator's URL/);
  });
});

/**
 * A TCP relay to the test server that counts connections: how many attempts
 * the gateway made.
 */
async function countingRelay(): Promise<{ url(url: string): string; connections(): number; close(): Promise<void> }> {
  const target = new URL(serverUrl());
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    count += 1;
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => socket.destroy());
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url(url) {
      const parsed = new URL(url);
      parsed.hostname = '127.0.0.1';
      parsed.port = String(port);
      return parsed.toString();
    },
    connections: () => count,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('permanent connection failures are not retried and not "retry shortly"', () => {
  const cases: [string, () => string, RegExp, boolean][] = [
    ['an unknown database', () => urlAs(`no_such_database_${suffix}`, 'authenticator', AUTHENTICATOR_PASSWORD), /does not exist.*3D000/, false],
    ['a wrong password', () => urlAs(testDatabase(), 'authenticator', 'not-the-password'), /rejected the password.*28P01/, true],
    ['an unknown role', () => urlAs(testDatabase(), `no_such_role_${suffix}`, 'whatever'), /(28P01|28000).*no_such_role_/, false],
  ];

  it.each(cases)('%s: npm start exits at once with the cause and the fix (no retry for DB_CONNECT_RETRY_MS=60000)', async (_name, url, cause, needsPasswords) => {
    if (needsPasswords && !passwordsChecked) return; // a trust-auth server accepts any password
    const exit = await startFails(url());
    expect(exit.stderr).toMatch(cause);
    expect(exit.stderr).toContain('Fix:');
  });

  it.each(cases)('%s: a request is 500 misconfigured after one connection attempt, logged at error with the cause', async (_name, url, cause, needsPasswords) => {
    if (needsPasswords && !passwordsChecked) return;
    const relay = await countingRelay();
    try {
      await withApp(relay.url(url()), async (app) => {
        const before = relay.connections();
        const answer = await app.app.inject({ url: '/api/tasks', headers: bearer(await tokenFor(newUser('permanent'))) });
        const problem = expectProblem(answer, 500, '/problems/misconfigured');
        expect(problem.detail).not.toMatch(/retry shortly/i);
        expect(answer.headers['retry-after']).toBeUndefined();
        // The test app retries connection failures for 1 s with backoff from
        // 50 ms: a retried failure would have made several attempts.
        expect(relay.connections() - before).toBe(1);
        expect(logText(app, 50)).toMatch(cause);
        // Readiness names the check, without "retry", and logs the cause.
        const { response, body } = await readiness(app);
        expectProblem(response, 503);
        expect(body.detail).toContain('"connect"');
        expect(response.headers['retry-after']).toBeUndefined();
        expect(logText(app, 50)).toMatch(new RegExp(`readiness check "connect" failed: .*${cause.source}`));
      });
    } finally {
      await relay.close();
    }
  });

  it('a database that does not answer is still transient: retried, then 503 with Retry-After', async () => {
    const relay = await countingRelay();
    await relay.close(); // nothing listens on its port any more: connection refused
    await withApp(relay.url(inject('appUrl')), async (app) => {
      const answer = await app.app.inject({ url: '/api/tasks', headers: bearer(await tokenFor(newUser('transient'))) });
      expectProblem(answer, 503, '/problems/unavailable');
      expect(answer.headers['retry-after']).toBeDefined();
      const { response, body } = await readiness(app);
      expectProblem(response, 503);
      expect(body.detail).toContain('"connect"');
      expect(response.headers['retry-after']).toBeDefined();
    });
  });

  it('too many connections (53300) is transient: retried (several attempts), then 503 with Retry-After', async () => {
    const relay = await countingRelay();
    try {
      await withApp(relay.url(urlAs(testDatabase(), fullRole, 'full-password')), async (app) => {
        const before = relay.connections();
        const answer = await app.app.inject({ url: '/api/tasks', headers: bearer(await tokenFor(newUser('full'))) });
        expectProblem(answer, 503, '/problems/unavailable');
        expect(answer.headers['retry-after']).toBeDefined();
        expect(relay.connections() - before).toBeGreaterThan(1);
        expect(logText(app, 50)).toBe('');
      });
    } finally {
      await relay.close();
    }
    const exit = await startFails(urlAs(testDatabase(), fullRole, 'full-password'), { DB_CONNECT_RETRY_MS: '300' });
    expect(exit.stderr).toMatch(/takes no new connections for now \(.*too many connections/);
  });

  it('npm start against a database that does not answer exits non-zero after the retry budget, naming the host', async () => {
    const relay = await countingRelay();
    await relay.close();
    const exit = await startFails(relay.url(inject('appUrl')), { DB_CONNECT_RETRY_MS: '300', DB_CONNECT_TIMEOUT_MS: '1000' });
    expect(exit.stderr).toMatch(/does not answer/);
    expect(exit.stderr).toContain(`127.0.0.1:${new URL(relay.url(inject('appUrl'))).port}`);
  });
});

describe('a correctly configured gateway', () => {
  it('is ready, and stays ready under a burst of probes', async () => {
    await withApp(inject('appUrl'), async (app) => {
      const answers = await Promise.all(Array.from({ length: 20 }, () => readiness(app)));
      for (const { response } of answers) expect(response.statusCode, response.body).toBe(200);
      expect(logText(app, 50)).toBe('');
    });
  });
});
