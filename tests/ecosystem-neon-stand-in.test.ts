// docs/deploy-neon.md followed step by step against the Neon stand-in
// (tests/support/neon-stand-in.ts: TLS + SCRAM only, a neondb_owner-like
// owner, PgBouncer 1.18 in transaction mode as the pooled host), and what the
// URL's sslmode and channel_binding ask for, honoured exactly.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { connectClient } from '../src/db/connection-settings.js';
import { projectRoot } from '../src/db/migrate.js';
import { createPool } from '../src/db/pool.js';
import { connect, serverUrl } from './support/database.js';
import { psqlAvailable } from './support/psql.js';
import { bearer, createTestApp, json, TEST_JWT_SECRET, tokenFor } from './support/http.js';
import { npmRun, startNeonStandIn, type NeonStandIn } from './support/neon-stand-in.js';

const execFileAsync = promisify(execFile);

let neon: NeonStandIn;
// Its own cluster and PgBouncer: the CI's PgBouncer run would only repeat it.
const skip = process.env.TEST_PGBOUNCER === '1';

beforeAll(async () => {
  if (skip) return;
  const admin = await connect(serverUrl());
  const { rows } = await admin.query(`select current_setting('server_version_num')::int / 10000 as major`);
  await admin.end();
  neon = await startNeonStandIn(rows[0].major);
});

afterAll(async () => {
  await neon?.stop();
});

/** The owner's direct URL with some parameters changed (null: removed). */
function ownerUrlWith(params: Record<string, string | null>, host = 'localhost') {
  const url = new URL(neon.ownerUrl);
  url.hostname = host;
  url.searchParams.delete('channel_binding');
  for (const [key, value] of Object.entries(params)) {
    if (value === null) url.searchParams.delete(key);
    else url.searchParams.set(key, value);
  }
  return url.toString();
}

async function encrypted(url: string): Promise<boolean> {
  const client = await connectClient(url);
  try {
    const { rows } = await client.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    return rows[0].ssl;
  } finally {
    await client.end();
  }
}

describe.skipIf(skip)('sslmode as libpq reads it, against a server that accepts TLS only', () => {
  it('disable: no TLS, so the server (hostssl only) refuses', async () => {
    await expect(encrypted(ownerUrlWith({ sslmode: 'disable', sslrootcert: null }))).rejects.toMatchObject({ code: '28000' });
  });

  it('require: encrypted, the certificate of an unknown CA not checked', async () => {
    expect(await encrypted(ownerUrlWith({ sslmode: 'require', sslrootcert: null }, '127.0.0.1'))).toBe(true);
  });

  it('verify-ca: the chain is checked against sslrootcert, the host name is not', async () => {
    expect(await encrypted(ownerUrlWith({ sslmode: 'verify-ca' }, '127.0.0.1'))).toBe(true);
  });

  it('verify-full: chain and host name checked; an unknown CA or another host name is refused', async () => {
    expect(await encrypted(ownerUrlWith({ sslmode: 'verify-full' }))).toBe(true);
    await expect(encrypted(ownerUrlWith({ sslmode: 'verify-full', sslrootcert: null }))).rejects.toThrow(/self.signed|unable to verify|certificate/i);
    await expect(encrypted(ownerUrlWith({ sslmode: 'verify-full' }, '127.0.0.1'))).rejects.toThrow(/does not match|altnames/i);
  });

  it('prefer and allow, which node-postgres cannot honour (no fallback to plain text), stop the gateway at start-up with the reason', () => {
    for (const mode of ['prefer', 'allow']) {
      const attempt = () => loadConfig({ DATABASE_URL: `postgres://a:b@db.example.com/x?sslmode=${mode}`, JWT_SECRET: TEST_JWT_SECRET });
      expect(attempt).toThrow(ConfigError);
      expect(attempt).toThrow(new RegExp(`sslmode=${mode} is not supported`));
    }
    expect(() =>
      loadConfig({ DATABASE_URL: 'postgres://a:b@db.example.com/x?sslmode=disable&channel_binding=require', JWT_SECRET: TEST_JWT_SECRET }),
    ).toThrow(/channel_binding=require needs TLS/);
  });
});

describe.skipIf(skip)('docs/deploy-neon.md, step by step, on the stand-in', () => {
  it('step 2: npm run db:migrate refuses a -pooler host with one clear message, before connecting', async () => {
    const pooled = new URL(neon.ownerUrl);
    pooled.hostname = 'ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech';
    const failure = npmRun('db:migrate', { DATABASE_OWNER_URL: pooled.toString() });
    await expect(failure).rejects.toThrow(/exited 2/);
    await expect(failure).rejects.toThrow(/db:migrate: ep-cool-darkness-123456-pooler\.us-east-2\.aws\.neon\.tech is a pooled \(-pooler\) host.*Remove "-pooler" from the host name/);
  });

  it('step 2: npm run db:migrate as neondb_owner over the direct host (verify-full, channel_binding=require) applies everything and sets the password', async () => {
    const output = await npmRun('db:migrate', { DATABASE_OWNER_URL: neon.ownerUrl, AUTHENTICATOR_PASSWORD: neon.authenticatorPassword });
    expect(output).toMatch(/migrations and policies applied/);
    expect(output).toMatch(/authenticator password set/);
  });

  it.skipIf(!psqlAvailable)('step 3: scripts/neon-setup.sql (plain psql, check only) passes', async () => {
    const { stdout, stderr } = await execFileAsync(
      'psql',
      [neon.ownerUrl, '-X', '-v', 'ON_ERROR_STOP=1', '-f', 'scripts/neon-setup.sql'],
      { cwd: projectRoot, env: { ...process.env, PGCONNECT_TIMEOUT: '10' } },
    );
    const output = `${stdout}\n${stderr}`;
    expect(output).toMatch(/role neondb_owner \(not a superuser\)/);
    // What docs/deploy-neon.md shows, line for line.
    expect(output).toContain('psql:scripts/neon-setup.sql:114: NOTICE:  roles checked: authenticator logs in, reaches anon and authenticated only');
    expect(output).toMatch(/Next: start the gateway \(docs\/deploy-neon.md\) with\n {2}DATABASE_URL=postgresql:\/\/authenticator:<password>@localhost\/neondb\?sslmode=verify-full\n {2}and JWT_SECRET or JWKS_URL/);
    expect(output).toMatch(/roles checked/);
    expect(output).toMatch(/RLS audit passed/);
  });

  it('step 3: npm run db:audit with DATABASE_OWNER_URL passes', async () => {
    const output = await npmRun('db:audit', { DATABASE_OWNER_URL: neon.ownerUrl });
    expect(output).toMatch(/RLS audit passed/);
  });

  it('channel_binding=require: SCRAM-SHA-256-PLUS on the direct host; through PgBouncer, which offers only SCRAM-SHA-256, refused', async () => {
    const withBinding = (url: string) => {
      const parsed = new URL(url);
      parsed.searchParams.set('channel_binding', 'require');
      return parsed.toString();
    };
    expect(await encrypted(withBinding(neon.directAppUrl))).toBe(true);
    await expect(connectClient(withBinding(neon.pooledAppUrl))).rejects.toThrow(
      /channel_binding=require: the server offered SCRAM-SHA-256 but not SCRAM-SHA-256-PLUS/,
    );
    // The gateway's pool too: no connection, rather than one without the protection asked for.
    const pool = createPool(withBinding(neon.pooledAppUrl), { max: 1, connectTimeoutMs: 5_000, connectRetryMs: 0, statementTimeoutMs: 5_000 });
    await expect(pool.query('select 1')).rejects.toThrow(/SCRAM-SHA-256-PLUS/);
    await pool.end();
    // Without the requirement (channel_binding=prefer, libpq's default) the pooled host works;
    // pg_stat_ssl then shows PgBouncer's own connection to the server, TLS as well.
    expect(await encrypted(neon.pooledAppUrl)).toBe(true);
  });

  it('step 4: the gateway on the pooled URL (TLS verified, prepared statements at their default): per-user isolation holds', async () => {
    const testApp = await createTestApp({ appUrl: neon.pooledAppUrl, preparedStatements: true });
    try {
      const alice = bearer(await tokenFor('alice'));
      const bob = bearer(await tokenFor('bob'));
      for (let i = 0; i < 20; i++) {
        const created = await testApp.app.inject({ method: 'POST', url: '/api/tasks', headers: alice, payload: { title: `task ${i}` } });
        expect(created.statusCode, created.body).toBe(201);
        expect((await testApp.app.inject({ method: 'GET', url: `/api/tasks/${json(created).id}`, headers: bob })).statusCode).toBe(403);
      }
      const list = await testApp.app.inject({ method: 'GET', url: '/api/tasks', headers: alice });
      expect(list.json()).toHaveLength(20);
      expect((await testApp.app.inject({ method: 'GET', url: '/api/tasks', headers: bob })).json()).toEqual([]);
    } finally {
      await testApp.close();
    }
  });
});

describe.skipIf(skip)('a compute restart behind the running pooler (what a wake looks like to the gateway)', () => {
  it('with the default connection budget, requests arriving while the server is down and during PgBouncer\'s login hold-off wait and succeed', async () => {
    const { pool: poolSettings } = loadConfig({ DATABASE_URL: neon.pooledAppUrl, JWT_SECRET: TEST_JWT_SECRET });
    const testApp = await createTestApp({ appUrl: neon.pooledAppUrl, poolSettings });
    try {
      const user = bearer(await tokenFor('waking'));
      const request = (i: number) =>
        testApp.app.inject({ method: 'POST', url: '/api/tasks', headers: user, payload: { title: `during the wake ${i}` } });
      expect((await request(-1)).statusCode).toBe(201);

      // The compute goes away (requests in flight at that moment may get 503:
      // their outcome is unknown), stays away 1.5 s, and comes back.
      await neon.cluster.stopServer();
      const started = Date.now();
      const back = new Promise((resolve) => setTimeout(resolve, 1_500)).then(() => neon.cluster.startServer());
      // Requests at intervals from then on: more at once than the pool holds, so
      // some need new connections (refused by PgBouncer during its hold-off) and some
      // wait on open ones (queued by PgBouncer).
      const timings: { at: number; status: number; tookMs: number }[] = [];
      const inFlight: Promise<void>[] = [];
      for (const at of [0, 300, 1_000, 2_500, 5_000]) {
        await new Promise((resolve) => setTimeout(resolve, at - (Date.now() - started)));
        for (let k = 0; k < 3; k++) {
          const i = timings.length + inFlight.length;
          const sent = Date.now();
          inFlight.push(request(i).then((response) => void timings.push({ at, status: response.statusCode, tookMs: Date.now() - sent })));
        }
      }
      await back;
      await Promise.all(inFlight);
      console.table(timings.sort((a, b) => a.at - b.at));
      expect(timings.map((t) => t.status)).toEqual(timings.map(() => 201));

      const list = await testApp.app.inject({ method: 'GET', url: '/api/tasks', headers: user });
      expect(list.json()).toHaveLength(timings.length + 1);
    } finally {
      await testApp.close();
    }
  }, 60_000);
});
