// npm run bench:scaling [-- --requests 300]
//
// How list latency scales, measured through the real gateway (one client,
// sequential requests, so latency is not queueing):
//   1. with the number of tasks one user has: 10, 100, 1,000, 10,000 — it
//      should grow with the rows returned;
//   2. with the size of the table: a 100-task user's list at ~11,000 rows and
//      again after 1,000,000 more rows of 10,000 other users — it should not
//      grow at all (an index range scan, no sort; the plan is printed);
//   3. the list's query parameters for the 10,000-task user at 1M rows:
//      status, sort=title, pages (limit, and a later page through its
//      cursor), and a revalidation answered with 304, each with its plan.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { SignJWT } from 'jose';
import { startEmbeddedCluster } from '../../src/db/embedded-cluster.js';
import { prepareDatabase, withDatabase } from '../../src/db/database.js';
import { startGatewayProcess } from './gateway-process.js';
import { percentile } from './tools.js';
import { taskQueries } from '../../src/db/task-queries.js';
import type { ListQuery } from '../../src/http/task-list-query.js';

const JWT_SECRET = 'benchmark-secret-benchmark-secret-benchmark';
const requestsArg = process.argv.indexOf('--requests');
const REQUESTS = requestsArg >= 0 ? Number(process.argv[requestsArg + 1]) : 300;

async function seedUser(db: pg.Client, user: string, tasks: number) {
  await db.query(
    `insert into api.tasks (user_id, title, description, completed)
     select $1, 'task ' || n, case when n % 3 = 0 then 'a description of task ' || n end, n % 2 = 0
       from generate_series(1, $2::int) n`,
    [user, tasks],
  );
}

async function tokenOf(user: string) {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setIssuedAt()
    .setExpirationTime('1h').sign(new TextEncoder().encode(JWT_SECRET));
}

async function listLatency(
  url: string,
  user: string,
  query = '',
  extraHeaders: Record<string, string> = {},
): Promise<{ p50: number; p99: number; rows: number; status: number }> {
  const headers = { authorization: `Bearer ${await tokenOf(user)}`, ...extraHeaders };
  let rows = 0;
  let status = 0;
  for (let i = 0; i < 50; i++) await (await fetch(`${url}/api/tasks${query}`, { headers })).arrayBuffer(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const started = process.hrtime.bigint();
    const response = await fetch(`${url}/api/tasks${query}`, { headers });
    const text = await response.text();
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
    status = response.status;
    rows = text ? (JSON.parse(text) as unknown[]).length : 0;
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), rows, status };
}

/**
 * The plan of the gateway's own list statement for a query, as the user,
 * and for a page also the plan api.list_tasks_page() runs inside (through
 * auto_explain, reported to this session as a notice).
 */
async function explainListQuery(db: pg.Client, user: string, query: ListQuery, known: string[] = []): Promise<string> {
  const statement = taskQueries.list(query, known);
  const nested: string[] = [];
  const onNotice = (notice: { message?: string }) => {
    const plan = /Query Text: ([\s\S]*?)\n(\S[\s\S]*)$/.exec(notice.message ?? '');
    if (plan && plan[1].includes('api.tasks') && !plan[1].includes('list_version')) nested.push(plan[2]);
  };
  db.on('notice', onNotice);
  await db.query('begin');
  try {
    if (query.limit !== undefined) {
      await db.query("load 'auto_explain'");
      for (const [name, value] of Object.entries({
        log_min_duration: '0', log_nested_statements: 'on', log_analyze: 'on', log_timing: 'off', log_level: 'notice',
      })) await db.query(`select set_config('auto_explain.${name}', $1, true)`, [value]);
    }
    await db.query(
      "select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)",
      [JSON.stringify({ sub: user })],
    );
    const { rows } = await db.query(`explain (analyze, costs off, timing off, summary off) ${statement.text}`, statement.values);
    const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
    return nested.length ? `${plan}\n  inside api.list_tasks_page():\n${nested.join('\n')}` : plan;
  } finally {
    await db.query('rollback');
    db.off('notice', onNotice);
  }
}

/** Latency and plan of each list query for the 10,000-task user. */
async function listQueries(url: string, db: pg.Client, user: string) {
  const lines = ['| query | status | tasks returned | p50 ms | p99 ms |', '|---|---|---|---|---|'];
  const plans: string[] = [];
  const measure = async (label: string, path: string, query: ListQuery, headers: Record<string, string> = {}, known: string[] = []) => {
    const result = await listLatency(url, user, path, headers);
    lines.push(`| \`${label}\` | ${result.status} | ${result.rows} | ${result.p50.toFixed(2)} | ${result.p99.toFixed(2)} |`);
    plans.push(`${label}:\n${await explainListQuery(db, user, query, known)}`);
  };
  await measure('(none)', '', { status: 'all', sort: 'created' });
  await measure('?status=pending', '?status=pending', { status: 'pending', sort: 'created' });
  await measure('?status=completed', '?status=completed', { status: 'completed', sort: 'created' });
  await measure('?sort=title', '?sort=title', { status: 'all', sort: 'title' });
  await measure('?status=pending&sort=title', '?status=pending&sort=title', { status: 'pending', sort: 'title' });
  await measure('?limit=50', '?limit=50', { status: 'all', sort: 'created', limit: 50 });
  await measure('?sort=title&limit=50', '?sort=title&limit=50', { status: 'all', sort: 'title', limit: 50 });

  // A page in the middle: the cursor the gateway issues, and the position it holds.
  const headers = { authorization: `Bearer ${await tokenOf(user)}` };
  let next = `/api/tasks?sort=title&limit=50`;
  for (let page = 0; page < 100; page++) {
    const link = (await fetch(`${url}${next}`, { headers })).headers.get('link');
    next = /^<([^>]+)>/.exec(link ?? '')![1];
  }
  const { rows: [middle] } = await db.query(
    `select created_at::text, id::text, title from api.tasks where user_id = $1
      order by lower(title), created_at desc, id desc offset 5000 limit 1`,
    [user],
  );
  await measure('?sort=title&limit=50&cursor=… (page 101)', next.slice('/api/tasks'.length), {
    status: 'all',
    sort: 'title',
    limit: 50,
    after: { createdAt: middle.created_at, id: middle.id, title: middle.title },
  });

  const etag = (await fetch(`${url}/api/tasks`, { headers })).headers.get('etag')!;
  const version = /^"(\d+)-/.exec(etag)![1];
  await measure('(none), If-None-Match: current', '', { status: 'all', sort: 'created' }, { 'if-none-match': etag }, [version]);
  return { table: lines.join('\n'), plans: plans.join('\n\n') };
}

async function explainList(db: pg.Client, user: string): Promise<string> {
  await db.query('begin');
  try {
    await db.query(
      "select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)",
      [JSON.stringify({ sub: user })],
    );
    const { rows } = await db.query(
      'explain (analyze, costs off, timing off, summary off) ' +
        'select id, user_id, title, description, completed, created_at, updated_at, version ' +
        'from api.tasks order by created_at desc, id desc',
    );
    return rows.map((row) => row['QUERY PLAN']).join('\n');
  } finally {
    await db.query('rollback');
  }
}

async function main() {
  const workDir = await mkdtemp(path.join(tmpdir(), 'task-api-scaling-'));
  const cluster = await startEmbeddedCluster({ clusterDir: path.join(workDir, 'pg'), logFile: path.join(workDir, 'pg.log') });
  const ownerUrl = withDatabase(cluster.superuserUrl, 'task_api_scaling');
  const appUrl = await prepareDatabase(ownerUrl, 'scaling-authenticator-password');
  const db = new pg.Client({ connectionString: ownerUrl });
  await db.connect();
  const gateway = await startGatewayProcess({ DATABASE_URL: appUrl, JWT_SECRET, LOG_LEVEL: 'warn' });
  try {
    const lines: string[] = [];
    lines.push('| tasks of the user | rows in table | p50 ms | p99 ms |', '|---|---|---|---|');
    for (const tasks of [10, 100, 1_000, 10_000]) await seedUser(db, `user-${tasks}`, tasks);
    await db.query('vacuum analyze api.tasks');
    const tableRows = async () => Number((await db.query('select count(*) from api.tasks')).rows[0].count);

    let small = 0;
    for (const tasks of [10, 100, 1_000, 10_000]) {
      const result = await listLatency(gateway.url, `user-${tasks}`);
      if (result.rows !== tasks) throw new Error(`expected ${tasks} rows, got ${result.rows}`);
      lines.push(`| ${tasks} | ${await tableRows()} | ${result.p50.toFixed(2)} | ${result.p99.toFixed(2)} |`);
      if (tasks === 100) small = result.p50;
    }
    const planSmall = await explainList(db, 'user-100');

    process.stderr.write('adding 1,000,000 tasks of 10,000 other users…\n');
    await db.query(
      `insert into api.tasks (user_id, title, completed)
       select 'crowd-' || u, 'task ' || n, false
         from generate_series(1, 10000) u, generate_series(1, 100) n`,
    );
    await db.query('vacuum analyze api.tasks');
    const large = await listLatency(gateway.url, 'user-100');
    lines.push(`| 100 | ${await tableRows()} | ${large.p50.toFixed(2)} | ${large.p99.toFixed(2)} |`);
    const planLarge = await explainList(db, 'user-100');
    const queries = await listQueries(gateway.url, db, 'user-10000');

    console.log(`\nList latency through the gateway, ${REQUESTS} sequential requests each\n\n${lines.join('\n')}`);
    console.log(`\n100-task user at 1M rows vs ~11k rows: p50 ${((large.p50 / small - 1) * 100).toFixed(1)}% change`);
    console.log(`\nPlan at ~11k rows:\n${planSmall}\n\nPlan at ~1M rows:\n${planLarge}`);
    console.log(`\nList query parameters, 10,000-task user, ${await tableRows()} rows in the table, ${REQUESTS} sequential requests each\n\n${queries.table}`);
    console.log(`\nTheir plans (the gateway's statements):\n\n${queries.plans}`);
  } finally {
    await gateway.stop();
    await db.end();
    await cluster.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

await main();
