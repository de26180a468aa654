// npm run bench [-- --duration 10 --connections 16 --smoke --ops list,get --keys hs256,eddsa]
// npm run bench -- --scenario abuse [--abusers 10]: only the abuse scenario (scripts/bench/abuse.ts)
//
// Seeds a database with many users × tasks, starts the real gateway as a
// process, and drives it with wrk, beside two pgbench baselines at the same
// concurrency on the same server in the same run:
//   (a) the fixed reference: the plainest transaction doing the same work
//       (scripts/bench/pgbench/reference-*.sql, four statements);
//   (b) the exact SQL the gateway sends, generated from its query code and
//       pipelined the way the gateway pipelines it.
// Prints one table and writes the results as JSON to bench-results/; every
// row has the CPU µs per request of the gateway, PostgreSQL, the load
// generator and the whole machine (scripts/bench/cpu-usage.ts).
//
// Database: an embedded PostgreSQL in a temporary directory, or a new
// database task_api_bench in the server at BENCH_DATABASE_URL (a superuser
// or owner URL).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { SignJWT } from 'jose';
import { startEmbeddedCluster, type EmbeddedCluster } from '../../src/db/embedded-cluster.js';
import { startGatewayProcess, startHttpFloor } from './gateway-process.js';
import { prepareDatabase, withDatabase } from '../../src/db/database.js';
import { projectRoot } from '../../src/db/migrate.js';
import { startJwksStandIn } from './jwks-stand-in.js';
import { gatewaySqlScript, REFERENCE_SCRIPTS, type Operation } from './gateway-sql.js';
import { ensureTool, runPgbench, runWrk, type Measurement } from './tools.js';
import { runAbuseScenario, seedAbuser } from './abuse.js';
import { onlyPostmasterHere, postmasterFromDataDirectory, postmasterOfBackend } from './cpu-usage.js';

interface Options {
  durationSeconds: number;
  connections: number;
  users: number;
  tasksPerUser: number;
  ops: Operation[];
  keys: ('hs256' | 'eddsa')[];
  baselines: boolean;
  smoke: boolean;
  /** Only this scenario instead of the operations ("abuse"). */
  scenario?: 'abuse';
  /** Clients looping on the abusive list. */
  abusers: number;
}

const ALL_OPS: Operation[] = ['list', 'get', 'create', 'toggle', 'patch', 'delete-recreate', 'mix'];
const JWT_SECRET = 'benchmark-secret-benchmark-secret-benchmark';

function parseOptions(argv: string[]): Options {
  const value = (name: string) => {
    const index = argv.indexOf(`--${name}`);
    return index >= 0 ? argv[index + 1] : undefined;
  };
  const smoke = argv.includes('--smoke');
  return {
    durationSeconds: Number(value('duration') ?? (smoke ? 1 : 10)),
    connections: Number(value('connections') ?? 16),
    users: Number(value('users') ?? (smoke ? 50 : 1000)),
    tasksPerUser: Number(value('tasks') ?? 100),
    ops: (value('ops')?.split(',') as Operation[]) ?? (smoke ? ['list', 'create'] : ALL_OPS),
    keys: (value('keys')?.split(',') as Options['keys']) ?? (smoke ? ['hs256'] : ['hs256', 'eddsa']),
    baselines: !argv.includes('--no-baselines'),
    smoke,
    scenario: value('scenario') === 'abuse' ? 'abuse' : undefined,
    abusers: Number(value('abusers') ?? 10),
  };
}

/**
 * The PostgreSQL server's postmaster, for its CPU time: from postmaster.pid in
 * its data directory (readable by a superuser, on this machine), else the
 * parent of this connection's backend, else (for a server on loopback) the
 * only postgres process here whose parent is not postgres. Undefined when none
 * of them works: its CPU is then not reported rather than guessed.
 */
async function findPostmaster(admin: pg.Client, serverUrl: string): Promise<number | undefined> {
  const dataDirectory = await admin
    .query<{ setting: string }>("select setting from pg_settings where name = 'data_directory'")
    .then((result) => result.rows[0]?.setting, () => undefined);
  const { rows } = await admin.query<{ pid: number }>('select pg_backend_pid() as pid');
  const host = new URL(serverUrl).hostname;
  const local = ['', 'localhost', '127.0.0.1', '[::1]'].includes(host);
  return (
    (dataDirectory ? postmasterFromDataDirectory(dataDirectory) : undefined) ??
    postmasterOfBackend(rows[0].pid) ??
    (local ? onlyPostmasterHere() : undefined)
  );
}

async function openBenchDatabase(workDir: string) {
  let cluster: EmbeddedCluster | undefined;
  let serverUrl = process.env.BENCH_DATABASE_URL;
  const clusterDir = path.join(workDir, 'pg');
  if (!serverUrl) {
    cluster = await startEmbeddedCluster({ clusterDir, logFile: path.join(workDir, 'pg.log') });
    serverUrl = cluster.superuserUrl;
  }
  const ownerUrl = withDatabase(serverUrl, 'task_api_bench');
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  const postmasterPid = cluster ? postmasterFromDataDirectory(clusterDir) : await findPostmaster(admin, serverUrl);
  await admin.query('drop database if exists task_api_bench with (force)');
  await admin.end();
  const appUrl = await prepareDatabase(ownerUrl, 'benchmark-authenticator-password');
  return {
    ownerUrl,
    appUrl,
    postmasterPid,
    description: cluster ? 'embedded PostgreSQL' : 'BENCH_DATABASE_URL',
    stop: () => cluster?.stop(),
  };
}

async function seed(ownerUrl: string, users: number, tasksPerUser: number) {
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    // Ids are md5('bench-user-<u>-<n>')::uuid so pgbench can name any task.
    await client.query(
      `insert into api.tasks (id, user_id, title, description, completed)
       select md5('bench-user-' || u || '-' || n)::uuid, 'bench-user-' || u,
              'task ' || n || ' of user ' || u,
              case when n % 3 = 0 then 'a description of task ' || n end,
              n % 2 = 0
         from generate_series(1, $1::int) u, generate_series(1, $2::int) n`,
      [users, tasksPerUser],
    );
    await client.query('vacuum analyze api.tasks');
  } finally {
    await client.end();
  }
}

function taskIdsOf(user: number, tasksPerUser: number, sample = 20): Promise<string[]> {
  // The same md5 the seed used, computed here without a round trip.
  return import('node:crypto').then(({ createHash }) =>
    Array.from({ length: Math.min(sample, tasksPerUser) }, (_, i) => {
      const hex = createHash('md5').update(`bench-user-${user}-${i + 1}`).digest('hex');
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    }),
  );
}

async function writeWrkData(file: string, tokens: string[], tasksPerUser: number) {
  const lines = ['users = {'];
  for (let u = 1; u <= tokens.length; u++) {
    const ids = await taskIdsOf(u, tasksPerUser);
    lines.push(`  { token = "${tokens[u - 1]}", ids = { ${ids.map((id) => `"${id}"`).join(', ')} } },`);
  }
  lines.push('}');
  await writeFile(file, lines.join('\n'));
}

/** One real response body of the gateway for a read operation. */
async function sampleResponse(url: string, op: 'list' | 'get', token: string): Promise<Buffer> {
  const fetchBody = async (pathname: string) => {
    const response = await fetch(`${url}${pathname}`, { headers: { authorization: `Bearer ${token}` } });
    if (!response.ok) throw new Error(`GET ${pathname}: ${response.status}`);
    return Buffer.from(await response.arrayBuffer());
  };
  const list = await fetchBody('/api/tasks');
  return op === 'list' ? list : fetchBody(`/api/tasks/${(JSON.parse(list.toString()) as { id: string }[])[0].id}`);
}

function formatTable(rows: Record<string, unknown>[]): string {
  const columns = Object.keys(rows[0] ?? {});
  const cells = rows.map((row) => columns.map((column) => String(row[column] ?? '')));
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((row) => row[i].length)));
  const line = (values: string[]) => `| ${values.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  return [line(columns), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

const micros = (value?: number) => (value === undefined ? '' : Math.round(value));
const ratio = (value: number, base?: number) => (base ? `${Math.round((value / base) * 100)}%` : '');

async function main() {
  const options = parseOptions(process.argv.slice(2));
  await ensureTool('wrk', 'wrk');
  if (options.baselines) await ensureTool('pgbench', 'postgresql-client');

  const workDir = await mkdtemp(path.join(tmpdir(), 'task-api-bench-'));
  const database = await openBenchDatabase(workDir);
  const jwks = await startJwksStandIn();
  const cleanups: (() => Promise<unknown> | unknown)[] = [() => jwks.close(), () => database.stop(), () => rm(workDir, { recursive: true, force: true })];
  try {
    process.stderr.write(`seeding ${options.users} users × ${options.tasksPerUser} tasks…\n`);
    await seed(database.ownerUrl, options.users, options.tasksPerUser);
    const abuserTasks = options.scenario === 'abuse' ? await seedAbuser(database.ownerUrl) : 0;

    const userIds = Array.from({ length: options.users }, (_, i) => `bench-user-${i + 1}`);
    const tokens = {
      hs256: await Promise.all(
        userIds.map((sub) =>
          new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('2h')
            .sign(new TextEncoder().encode(JWT_SECRET)),
        ),
      ),
      eddsa: await Promise.all(userIds.map((sub) => jwks.sign(sub))),
    };

    const gateway = await startGatewayProcess({
      DATABASE_URL: database.appUrl,
      JWT_SECRET,
      JWKS_URL: jwks.jwksUrl,
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
      DB_POOL_MAX: process.env.DB_POOL_MAX ?? '10',
    });
    cleanups.unshift(() => gateway.stop());

    // Warm-up: let the JIT compile the hot paths before anything is measured.
    const warmupData = path.join(workDir, 'wrk-warmup.lua');
    await writeWrkData(warmupData, tokens.hs256, options.tasksPerUser);
    await runWrk({ url: gateway.url, op: 'mix', dataFile: warmupData, connections: options.connections, durationSeconds: options.smoke ? 1 : 3 });

    if (options.scenario === 'abuse') {
      const dataFile = path.join(workDir, 'wrk-hs256.lua');
      await writeWrkData(dataFile, tokens.hs256, options.tasksPerUser);
      const abuse = await runAbuseScenario({
        gateway,
        jwtSecret: JWT_SECRET,
        dataFile,
        connections: options.connections,
        durationSeconds: options.durationSeconds,
        abusers: options.abusers,
        abuserTasks,
      });
      console.log(
        `\nTask API abuse scenario: ${options.abusers} clients looping on one user's list of ${abuserTasks} tasks ` +
          `(the most MAX_BYTES_PER_USER allows, descriptions of 10,000 × U+0001), while ${options.connections} connections of ` +
          `${options.users} other users do gets and lists (HS256), ${options.durationSeconds} s per run, ${database.description}\n\n` +
          `${formatTable(abuse.rows)}\n\nabuser: ${formatTable([abuse.abuser])}`,
      );
      const outDir = path.join(projectRoot, 'bench-results');
      await mkdir(outDir, { recursive: true });
      const outFile = path.join(outDir, `bench-abuse-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
      await writeFile(outFile, JSON.stringify({ options, database: database.description, abuserTasks, ...abuse }, null, 2));
      console.log(`results: ${path.relative(projectRoot, outFile)}`);
      return;
    }

    const results: Record<string, unknown>[] = [];
    // The gateway's peak RSS over each run (and over the whole benchmark).
    const peakRssByRun = new Map<string, number | undefined>();
    let overallPeakRssMb = 0;
    const raw: Record<string, Measurement | undefined>[] = [];
    for (const op of options.ops) {
      const measured: Record<string, Measurement | undefined> = {};
      for (const key of options.keys) {
        const dataFile = path.join(workDir, `wrk-${key}.lua`);
        await writeWrkData(dataFile, tokens[key], options.tasksPerUser);
        process.stderr.write(`gateway ${op} (${key})…\n`);
        const runner = `gateway ${key === 'hs256' ? 'HS256' : 'EdDSA'}`;
        overallPeakRssMb = Math.max(overallPeakRssMb, (await gateway.peakRssMb()) ?? 0);
        await gateway.resetPeakRss();
        measured[runner] = await runWrk({
          url: gateway.url,
          op,
          dataFile,
          connections: options.connections,
          durationSeconds: options.durationSeconds,
          cpu: { gatewayPid: gateway.pid, postmasterPid: database.postmasterPid },
        });
        peakRssByRun.set(`${op} ${runner}`, await gateway.peakRssMb());
      }
      if (options.baselines && !options.smoke && (op === 'list' || op === 'get')) {
        // Not a baseline: node:http alone, sending the gateway's own response
        // for this operation, to show what HTTP costs before the gateway does anything.
        process.stderr.write(`node:http floor ${op}…\n`);
        // The data file and tokens of the key just measured (whichever --keys chose).
        const key = options.keys[options.keys.length - 1];
        const floor = await startHttpFloor(await sampleResponse(gateway.url, op, tokens[key][0]));
        try {
          measured['node:http floor'] = await runWrk({
            url: floor.url,
            op,
            dataFile: path.join(workDir, `wrk-${key}.lua`),
            connections: options.connections,
            durationSeconds: options.durationSeconds,
            cpu: { gatewayPid: floor.pid, postmasterPid: database.postmasterPid },
          });
        } finally {
          await floor.stop();
        }
      }
      if (options.baselines && REFERENCE_SCRIPTS[op]) {
        const pgbenchVars = { users: options.users, tasks: Math.min(20, options.tasksPerUser) };
        process.stderr.write(`pgbench reference ${op}…\n`);
        measured['(a) reference'] = await runPgbench({
          url: database.appUrl,
          scriptFile: path.join(projectRoot, 'scripts', 'bench', 'pgbench', REFERENCE_SCRIPTS[op]!),
          vars: pgbenchVars,
          connections: options.connections,
          durationSeconds: options.durationSeconds,
          workDir,
          protocol: 'prepared',
          cpu: { postmasterPid: database.postmasterPid },
        });
        const gatewayScript = path.join(workDir, `gateway-${op}.sql`);
        await writeFile(gatewayScript, gatewaySqlScript(op));
        process.stderr.write(`pgbench gateway SQL ${op}…\n`);
        measured['(b) gateway SQL'] = await runPgbench({
          url: database.appUrl,
          scriptFile: gatewayScript,
          vars: pgbenchVars,
          connections: options.connections,
          durationSeconds: options.durationSeconds,
          workDir,
          // pgbench prepares a pipelined script's statements before it runs,
          // as authenticator, which may not even see schema api: parse each time.
          protocol: 'extended',
          cpu: { postmasterPid: database.postmasterPid },
        });
      }
      if (options.baselines && op === 'list' && !options.smoke) {
        // Not a baseline: the same list with its JSON built by PostgreSQL
        // (json_agg), to show what moving serialization into the database costs it.
        process.stderr.write('pgbench list with json_agg…\n');
        measured['PostgreSQL json_agg'] = await runPgbench({
          url: database.appUrl,
          scriptFile: path.join(projectRoot, 'scripts', 'bench', 'pgbench', 'alternative-list-json.sql'),
          vars: { users: options.users },
          connections: options.connections,
          durationSeconds: options.durationSeconds,
          workDir,
          protocol: 'prepared',
          cpu: { postmasterPid: database.postmasterPid },
        });
      }
      raw.push({ op: op as never, ...measured });
      const reference = measured['(a) reference'];
      const gatewaySql = measured['(b) gateway SQL'];
      for (const [name, m] of Object.entries(measured)) {
        if (!m) continue;
        const isGateway = name.startsWith('gateway ');
        results.push({
          operation: op,
          runner: name,
          'req/s': Math.round(m.rate),
          'p50 ms': m.p50Ms.toFixed(2),
          'p99 ms': m.p99Ms.toFixed(2),
          errors: m.errors,
          'vs (a)': isGateway ? ratio(m.rate, reference?.rate) : '',
          'vs (b)': isGateway ? ratio(m.rate, gatewaySql?.rate) : '',
          'p99 vs (a)': isGateway && reference ? `${(m.p99Ms / reference.p99Ms).toFixed(1)}×` : '',
          'CPU µs/req: gateway': micros(m.cpuMicrosPerRequest?.gateway),
          PostgreSQL: micros(m.cpuMicrosPerRequest?.postgres),
          'load gen': micros(m.cpuMicrosPerRequest?.loadGenerator),
          machine: micros(m.cpuMicrosPerRequest?.machine),
          'RSS MB': peakRssByRun.get(`${op} ${name}`) ?? '',
        });
      }
    }
    const peakRssMb = Math.max(overallPeakRssMb, (await gateway.peakRssMb()) ?? 0) || undefined;
    // The machine's busy CPU beyond the processes measured is other work on
    // the machine (and this process, which is idle while a run lasts).
    const unexplained = raw.flatMap(({ op, ...runners }) =>
      Object.entries(runners).flatMap(([name, m]) => {
        const cpu = m?.cpuMicrosPerRequest;
        if (cpu?.machine === undefined || cpu.postgres === undefined || cpu.loadGenerator === undefined) return [];
        const share = 1 - ((cpu.gateway ?? 0) + cpu.postgres + cpu.loadGenerator) / cpu.machine;
        return share > 0.1 ? [`${op} ${name} ${Math.round(share * 100)}%`] : [];
      }),
    );

    const header = [
      `Task API benchmark: ${options.connections} connections, ${options.durationSeconds} s per run, ` +
        `${options.users} users × ${options.tasksPerUser} tasks, ${database.description}`,
      '(a) = pgbench fixed reference, (b) = pgbench replaying the gateway\'s exact SQL; gateway ÷ (a) is the ratio that counts',
    ];
    console.log(`\n${header.join('\n')}\n\n${formatTable(results)}\n\ngateway peak RSS: ${peakRssMb ?? '?'} MB`);
    if (unexplained.length > 0) {
      console.log(`machine CPU not used by the processes measured (other work on the machine?): ${unexplained.join(', ')}`);
    }

    const outDir = path.join(projectRoot, 'bench-results');
    await mkdir(outDir, { recursive: true });
    const outFile = path.join(outDir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await writeFile(outFile, JSON.stringify({ options, database: database.description, peakRssMb, results, raw }, null, 2));
    console.log(`results: ${path.relative(projectRoot, outFile)}`);
  } finally {
    for (const cleanup of cleanups) await cleanup();
  }
}

await main();
