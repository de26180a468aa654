// npm run soak [-- --short]
//
// Two gateway processes, each reaching PostgreSQL through its own breakable
// TCP proxy, behind a small load balancer (this script) that follows their
// /health/ready; client workers write and read under load while faults are
// injected one after another: dropped database connections, an 8-s stall of
// database traffic (then delivered), refused connections, SIGKILL and
// SIGTERM of a gateway, and a burst of 200 concurrent requests. Every
// client keeps a ledger of what it was told, and resolves each 503 or broken
// connection the way the README says (re-read; retry with Idempotency-Key /
// If-Match). At the end the ledger is checked against the database.
//
// Prints per-status counts, per-fault error windows and recovery times and
// the verdict; exits non-zero on any 500, lost or duplicated write, parity
// mismatch or ghost write (a write that landed after the client was told, or
// concluded, that it had not). Loopback only; bounded in time and requests.
// SOAK_DATABASE_URL (a superuser URL) uses that server instead of an
// embedded cluster.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { prepareDatabase, withDatabase } from '../src/db/database.js';
import { freePort, startEmbeddedCluster, type EmbeddedCluster } from '../src/db/embedded-cluster.js';
import { projectRoot } from '../src/db/migrate.js';
import { mintHs256Token } from '../src/dev-secret.js';
import { startTcpProxy, type TcpProxy } from '../tests/support/tcp-proxy.js';

const SHORT = process.argv.includes('--short');
const SECRET = randomBytes(32).toString('hex');
const STATEMENT_TIMEOUT_MS = 2_000;
const CONNECT_RETRY_MS = 3_000;
/** After this long, a write whose connection broke can no longer commit (its deadline plus allowance). */
const WRITE_SETTLE_MS = STATEMENT_TIMEOUT_MS + CONNECT_RETRY_MS + 1_000 + 250 + 250;
const PLAN = SHORT
  ? { workers: 8, ratePerSecond: 120, maxRequests: 20_000, baselineMs: 4_000, recoverMs: 5_000, refuseMs: 6_000, stallMs: 8_000 }
  : { workers: 16, ratePerSecond: 400, maxRequests: 150_000, baselineMs: 15_000, recoverMs: 15_000, refuseMs: 15_000, stallMs: 8_000 };
const HARD_LIMIT_MS = SHORT ? 110_000 : 420_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const t0 = Date.now();
const now = () => Date.now() - t0;
const log = (line: string) => process.stderr.write(`[${(now() / 1000).toFixed(1).padStart(6)} s] ${line}\n`);

// ---------------------------------------------------------------------------
// Gateways

interface Gateway {
  name: string;
  port: number;
  url: string;
  proxy: TcpProxy;
  child?: ChildProcess;
  exited?: Promise<void>;
  /** What the load balancer last saw on /health/ready. */
  ready: boolean;
}

async function startGateway(gateway: Gateway, databaseUrl: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: gateway.proxy.urlFor(databaseUrl),
      JWT_SECRET: SECRET,
      PORT: String(gateway.port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'error',
      DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
      DB_CONNECT_TIMEOUT_MS: '2000',
      DB_CONNECT_RETRY_MS: String(CONNECT_RETRY_MS),
      SHUTDOWN_GRACE_MS: '1500',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (chunk) => (output += chunk));
  gateway.child = child;
  gateway.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  for (const deadline = Date.now() + 60_000; ; ) {
    if (child.exitCode !== null) throw new Error(`gateway ${gateway.name} exited during start-up:\n${output}`);
    if (/listening on/.test(output)) return;
    if (Date.now() > deadline) throw new Error(`gateway ${gateway.name} did not start:\n${output}`);
    await sleep(50);
  }
}

/** The load balancer's health checks: every 200 ms, like a short-interval balancer. */
function watchReadiness(gateways: Gateway[], stopped: () => boolean) {
  const loop = async (gateway: Gateway) => {
    while (!stopped()) {
      try {
        const response = await fetch(`${gateway.url}/health/ready`, { signal: AbortSignal.timeout(1_000) });
        await response.arrayBuffer();
        gateway.ready = response.status === 200;
      } catch {
        gateway.ready = false;
      }
      await sleep(200);
    }
  };
  return Promise.all(gateways.map(loop));
}

// ---------------------------------------------------------------------------
// Requests and what they got

interface Outcome {
  status: number; // 0: the connection failed (refused, reset, timed out)
  type?: string;
  etag?: string;
  body?: any;
  gateway: string;
}

interface Record_ {
  at: number;
  gateway: string;
  status: number;
  type?: string;
}

const records: Record_[] = [];
let requestCount = 0;

let gateways: Gateway[] = [];
let next = 0;
function pickGateway(): Gateway {
  const ready = gateways.filter((gateway) => gateway.ready);
  const candidates = ready.length ? ready : gateways;
  return candidates[next++ % candidates.length];
}

async function call(token: string, method: string, url: string, body?: unknown, headers: Record<string, string> = {}, target?: Gateway): Promise<Outcome> {
  const gateway = target ?? pickGateway();
  requestCount++;
  let outcome: Outcome;
  try {
    const response = await fetch(`${gateway.url}${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await response.text();
    const parsed = text ? JSON.parse(text) : undefined;
    outcome = {
      status: response.status,
      type: response.status >= 400 ? parsed?.type : undefined,
      etag: response.headers.get('etag') ?? undefined,
      body: parsed,
      gateway: gateway.name,
    };
    if (response.status >= 500 && !response.headers.get('content-type')?.includes('application/problem+json')) {
      outcome.type = 'not problem+json';
    }
  } catch {
    outcome = { status: 0, gateway: gateway.name };
    gateway.ready = false; // the balancer marks it down until its next health check
  }
  records.push({ at: now(), gateway: gateway.name, status: outcome.status, type: outcome.type });
  return outcome;
}

// ---------------------------------------------------------------------------
// The ledger: what each client was told, and what it concluded

interface LedgerTask {
  id: string;
  token: string; // the create's unique title prefix
  title: string;
  completed: boolean;
  version: number;
  deleted: boolean;
}

const verdict = { internalErrors: 0, notProblemJson: 0, ghosts: [] as string[], lost: [] as string[], duplicated: [] as string[], parity: [] as string[] };
const resolutions = { unavailableNotApplied: 0, unknownApplied: 0, unknownNotApplied: 0, brokenApplied: 0, brokenNotApplied: 0 };

const versionOf = (etag?: string) => Number(etag?.replace(/"/g, ''));

class Client {
  readonly tasks: LedgerTask[] = [];
  readonly unresolvedCreates: { key: string; token: string; title: string }[] = [];
  private creates = 0;
  constructor(
    readonly name: string,
    readonly sub: string,
    readonly token: string,
  ) {}

  private note(outcome: Outcome) {
    if (outcome.status >= 500 && outcome.status !== 503) verdict.internalErrors++;
    if (outcome.type === 'not problem+json') verdict.notProblemJson++;
  }

  /** GET a task until a definite answer (bounded). */
  private async read(task: LedgerTask): Promise<Outcome | undefined> {
    for (let i = 0; i < 120; i++) {
      const outcome = await call(this.token, 'GET', `/api/tasks/${task.id}`);
      this.note(outcome);
      if (outcome.status === 200 || outcome.status === 404) return outcome;
      await sleep(250);
    }
    return undefined;
  }

  /**
   * A write to `task` got no definite answer: decide from the task whether
   * it was applied. `expected(version)` says what the write would have made.
   */
  private async resolve(task: LedgerTask, outcome: Outcome, wasApplied: (read: Outcome) => boolean, apply: (read: Outcome) => void) {
    // A broken connection promises nothing about timing: wait until the write can no longer commit.
    if (outcome.status === 0) await sleep(WRITE_SETTLE_MS);
    const read = await this.read(task);
    if (!read) return; // unresolved; the final check compares with the database anyway
    const applied = wasApplied(read);
    const unchanged = read.status === 200 && versionOf(read.etag) === task.version;
    if (applied) {
      if (outcome.type === '/problems/unavailable') verdict.ghosts.push(`${task.id}: applied after "unavailable" (${outcome.gateway})`);
      if (outcome.status === 0) resolutions.brokenApplied++;
      else resolutions.unknownApplied++;
      apply(read);
    } else if (unchanged) {
      if (outcome.status === 0) resolutions.brokenNotApplied++;
      else if (outcome.type === '/problems/unavailable') resolutions.unavailableNotApplied++;
      else resolutions.unknownNotApplied++;
    } else {
      verdict.ghosts.push(`${task.id}: neither applied nor unchanged after ${outcome.status} ${outcome.type ?? ''}`);
      this.resync(task, read);
    }
  }

  private resync(task: LedgerTask, read: Outcome) {
    if (read.status === 404) {
      task.deleted = true;
      return;
    }
    task.version = versionOf(read.etag);
    task.completed = read.body.completed;
    task.title = read.body.title;
  }

  private unexpected(task: LedgerTask, what: string, outcome: Outcome) {
    verdict.ghosts.push(`${task.id}: ${what} answered ${outcome.status} ${outcome.type ?? ''}`);
  }

  async create() {
    const token = `${this.name}-c${this.creates++}`;
    const key = randomUUID();
    const title = `${token} new`;
    for (let attempt = 0; attempt < 40; attempt++) {
      const outcome = await call(this.token, 'POST', '/api/tasks', { title }, { 'idempotency-key': key });
      this.note(outcome);
      if (outcome.status === 201) {
        this.tasks.push({ id: outcome.body.id, token, title, completed: false, version: 1, deleted: false });
        return;
      }
      if (outcome.status === 409 && outcome.type === '/problems/task-limit-reached') return;
      if (outcome.status === 0) await sleep(WRITE_SETTLE_MS);
      else await sleep(250);
    }
    this.unresolvedCreates.push({ key, token, title });
  }

  /** `via`: send the write to this gateway, whatever the balancer thinks of it. */
  async toggle(task: LedgerTask, via?: Gateway) {
    const before = task.version;
    const outcome = await call(this.token, 'PATCH', `/api/tasks/${task.id}/complete`, undefined, { 'if-match': `"${before}"` }, via);
    this.note(outcome);
    if (outcome.status === 200) {
      task.version = versionOf(outcome.etag);
      task.completed = outcome.body.completed;
    } else if (outcome.status === 503 || outcome.status === 0) {
      await this.resolve(
        task,
        outcome,
        (read) => read.status === 200 && versionOf(read.etag) === before + 1,
        (read) => this.resync(task, read),
      );
    } else {
      this.unexpected(task, 'toggle', outcome);
      const read = await this.read(task);
      if (read) this.resync(task, read);
    }
  }

  async rename(task: LedgerTask) {
    const before = task.version;
    const title = `${task.token} v${before + 1}`;
    const outcome = await call(this.token, 'PATCH', `/api/tasks/${task.id}`, { title }, { 'if-match': `"${before}"` });
    this.note(outcome);
    if (outcome.status === 200) {
      task.version = versionOf(outcome.etag);
      task.title = outcome.body.title;
    } else if (outcome.status === 503 || outcome.status === 0) {
      await this.resolve(
        task,
        outcome,
        (read) => read.status === 200 && versionOf(read.etag) === before + 1 && read.body.title === title,
        (read) => this.resync(task, read),
      );
    } else {
      this.unexpected(task, 'rename', outcome);
      const read = await this.read(task);
      if (read) this.resync(task, read);
    }
  }

  async remove(task: LedgerTask) {
    const outcome = await call(this.token, 'DELETE', `/api/tasks/${task.id}`, undefined, { 'if-match': `"${task.version}"` });
    this.note(outcome);
    if (outcome.status === 204) {
      task.deleted = true;
    } else if (outcome.status === 503 || outcome.status === 0) {
      await this.resolve(
        task,
        outcome,
        (read) => read.status === 404,
        () => (task.deleted = true),
      );
    } else {
      this.unexpected(task, 'delete', outcome);
      const read = await this.read(task);
      if (read) this.resync(task, read);
    }
  }

  async readSome() {
    const live = this.tasks.filter((task) => !task.deleted);
    const outcome =
      Math.random() < 0.5 || !live.length
        ? await call(this.token, 'GET', '/api/tasks')
        : await call(this.token, 'GET', `/api/tasks/${live[Math.floor(Math.random() * live.length)].id}`);
    this.note(outcome);
  }

  async step() {
    const live = this.tasks.filter((task) => !task.deleted);
    const pick = () => live[Math.floor(Math.random() * live.length)];
    const r = Math.random();
    if (live.length < 4 || r < 0.1) return this.create();
    if (r < 0.4) return this.toggle(pick());
    if (r < 0.55) return this.rename(pick());
    if (r < 0.6) return this.remove(pick());
    return this.readSome();
  }
}

// ---------------------------------------------------------------------------
// Faults

interface Fault {
  name: string;
  start: number;
  end: number;
  gateway?: string;
}

const faults: Fault[] = [];

async function fault(name: string, gateway: Gateway | undefined, action: () => Promise<void>) {
  const entry: Fault = { name, start: now(), end: now(), gateway: gateway?.name };
  faults.push(entry);
  log(`fault: ${name}`);
  await action();
  entry.end = now();
}

async function burst(clients: Client[]) {
  // 200 at once, half creates (with keys, into the ledger), half reads, on both gateways.
  await Promise.all(
    Array.from({ length: 200 }, (_, i) => {
      const client = clients[i % clients.length];
      return i % 2 ? client.create() : client.readSome();
    }),
  );
}

// ---------------------------------------------------------------------------

async function main() {
  let cluster: EmbeddedCluster | undefined;
  let tempDir: string | undefined;
  let serverUrl = process.env.SOAK_DATABASE_URL;
  if (!serverUrl) {
    tempDir = await mkdtemp(path.join(tmpdir(), 'task-api-soak-'));
    cluster = await startEmbeddedCluster({ clusterDir: path.join(tempDir, 'pg'), logFile: path.join(tempDir, 'postgres.log') });
    serverUrl = cluster.superuserUrl;
  }
  const databaseName = `task_api_soak_${randomBytes(4).toString('hex')}`;
  const ownerUrl = withDatabase(serverUrl, databaseName);
  const appUrl = await prepareDatabase(ownerUrl, `soak-${randomBytes(8).toString('hex')}`);
  const target = new URL(appUrl);

  let exitCode = 1;
  try {
    gateways = await Promise.all(
      ['A', 'B'].map(async (name) => {
        const port = await freePort();
        const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
        return { name, port, url: `http://127.0.0.1:${port}`, proxy, ready: false };
      }),
    );
    await Promise.all(gateways.map((gateway) => startGateway(gateway, appUrl)));
    const [a, b] = gateways;
    log(`gateways A ${a.url} and B ${b.url}; ${PLAN.workers} clients, at most ${PLAN.ratePerSecond} requests/s`);

    let stopped = false;
    const health = watchReadiness(gateways, () => stopped);
    await sleep(300);

    const newClient = async (name: string) => {
      const sub = `soak-${name}-${randomBytes(3).toString('hex')}`;
      return new Client(name, sub, await mintHs256Token({ secret: SECRET, sub, expiresIn: '1h' }));
    };
    const clients = await Promise.all(Array.from({ length: PLAN.workers }, (_, i) => newClient(`w${i}`)));
    const interval = (1_000 * PLAN.workers) / PLAN.ratePerSecond;
    const workers = [...clients].map(async (client) => {
      while (!stopped && requestCount < PLAN.maxRequests && now() < HARD_LIMIT_MS) {
        const started = Date.now();
        await client.step();
        const rest = interval - (Date.now() - started);
        if (rest > 0) await sleep(rest);
      }
    });

    await sleep(PLAN.baselineMs);
    await fault('dropped connections (A)', a, async () => a.proxy.down());
    a.proxy.up();
    await sleep(PLAN.recoverMs);
    // Besides the clients' own traffic, a client of its own sends toggles
    // straight to A during the stall: the writes a ghost would apply twice.
    const stallClient = await newClient('stall');
    clients.push(stallClient);
    for (let i = 0; i < 6; i++) await stallClient.create();
    await fault(`${PLAN.stallMs / 1000}-s stall of database traffic, then delivered (A)`, a, async () => {
      a.proxy.hold();
      const toggles = Promise.all(stallClient.tasks.map((task) => stallClient.toggle(task, a)));
      await sleep(PLAN.stallMs);
      await a.proxy.release();
      await toggles;
    });
    await sleep(PLAN.recoverMs);
    await fault(`${PLAN.refuseMs / 1000} s of refused connections (B)`, b, async () => {
      b.proxy.down();
      await sleep(PLAN.refuseMs);
      b.proxy.up();
    });
    await sleep(PLAN.recoverMs);
    await fault('SIGKILL under load, restart (A)', a, async () => {
      a.child!.kill('SIGKILL');
      await a.exited;
      await sleep(1_000);
      await startGateway(a, appUrl);
    });
    await sleep(PLAN.recoverMs);
    await fault('SIGTERM under load (grace 1.5 s), restart (B)', b, async () => {
      b.child!.kill('SIGTERM');
      await b.exited;
      await startGateway(b, appUrl);
    });
    await sleep(PLAN.recoverMs);
    await fault('burst of 200 concurrent requests', undefined, () => burst(clients));
    await sleep(Math.min(PLAN.recoverMs, 5_000));

    stopped = true;
    await Promise.all(workers);
    await health;
    const endedAt = now();

    // Creates that never got a definite answer: the same key again tells.
    for (const client of clients) {
      for (const pending of client.unresolvedCreates) {
        const outcome = await call(client.token, 'POST', '/api/tasks', { title: pending.title }, { 'idempotency-key': pending.key });
        if (outcome.status === 201) client.tasks.push({ id: outcome.body.id, token: pending.token, title: pending.title, completed: false, version: 1, deleted: false });
        else verdict.lost.push(`create ${pending.token}: still ${outcome.status} at the end`);
      }
    }

    await checkLedger(ownerUrl, clients);
    report(endedAt);
    const failed =
      verdict.internalErrors + verdict.notProblemJson + verdict.ghosts.length + verdict.lost.length + verdict.duplicated.length + verdict.parity.length;
    exitCode = failed ? 1 : 0;
    console.log(`\nverdict: ${failed ? 'FAIL' : 'PASS'}`);
  } finally {
    for (const gateway of gateways) {
      gateway.child?.kill('SIGKILL');
      await gateway.exited;
      await gateway.proxy.close();
    }
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`drop database if exists ${admin.escapeIdentifier(databaseName)} with (force)`).catch(() => {});
    await admin.end();
    await cluster?.stop();
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
  }
  process.exit(exitCode);
}

async function checkLedger(ownerUrl: string, clients: Client[]) {
  const owner = new pg.Client({ connectionString: ownerUrl });
  await owner.connect();
  try {
    // As the owner (a superuser: row-level security does not apply), every soak user's tasks.
    const { rows } = await owner.query<{ id: string; user_id: string; title: string; completed: boolean; version: string }>(
      'select id, user_id, title, completed, version from api.tasks where user_id = any($1)',
      [clients.map((client) => client.sub)],
    );
    const stored = new Map(rows.map((row) => [row.id, row]));
    const tokens = new Map<string, number>();
    for (const row of rows) {
      const token = row.title.split(' ')[0];
      tokens.set(token, (tokens.get(token) ?? 0) + 1);
    }
    for (const [token, count] of tokens) if (count > 1) verdict.duplicated.push(`${token}: ${count} tasks`);
    const known = new Set<string>();
    for (const client of clients) {
      for (const task of client.tasks) {
        known.add(task.id);
        const row = stored.get(task.id);
        if (task.deleted) {
          if (row) verdict.lost.push(`${task.id}: deleted, still stored`);
          continue;
        }
        if (!row) {
          verdict.lost.push(`${task.id}: acknowledged, not stored`);
          continue;
        }
        const version = Number(row.version);
        if (version > task.version) verdict.ghosts.push(`${task.id}: version ${version} stored, ${task.version} known`);
        else if (version < task.version) verdict.lost.push(`${task.id}: version ${version} stored, ${task.version} acknowledged`);
        else if (row.completed !== task.completed) verdict.parity.push(`${task.id}: completed ${row.completed}, ledger ${task.completed}`);
        else if (row.title !== task.title) verdict.lost.push(`${task.id}: title "${row.title}", ledger "${task.title}"`);
      }
    }
    for (const row of rows) if (!known.has(row.id)) verdict.ghosts.push(`${row.id}: stored, never acknowledged (${row.title})`);
    const live = clients.reduce((sum, client) => sum + client.tasks.filter((task) => !task.deleted).length, 0);
    ledgerSize = { tasks: rows.length, ledger: known.size, live };
  } finally {
    await owner.end();
  }
}

let ledgerSize = { tasks: 0, ledger: 0, live: 0 };

function report(endedAt: number) {
  const byStatus = new Map<string, number>();
  for (const record of records) {
    const key = record.status === 0 ? 'connection failed' : `${record.status}${record.type && record.status >= 500 ? ` ${record.type}` : ''}`;
    byStatus.set(key, (byStatus.get(key) ?? 0) + 1);
  }
  console.log(`\n${SHORT ? 'short' : 'full'} soak: ${records.length} requests in ${(endedAt / 1000).toFixed(0)} s (${Math.round(records.length / (endedAt / 1000))}/s), ${PLAN.workers} clients, 2 gateways`);
  console.log('\n| status | count |\n|---|---:|');
  for (const [status, count] of [...byStatus].sort()) console.log(`| ${status} | ${count} |`);

  console.log('\n| fault | lasted | requests | errors (5xx / failed connections) | error window | recovery after the fault ended |\n|---|---:|---:|---|---:|---:|');
  faults.forEach((fault, i) => {
    const until = faults[i + 1]?.start ?? endedAt;
    const window = records.filter((record) => record.at >= fault.start && record.at < until);
    const errors = window.filter((record) => record.status === 0 || record.status >= 500);
    const kinds = new Map<string, number>();
    for (const error of errors) {
      const key = error.status === 0 ? 'conn' : error.type === '/problems/outcome-unknown' ? '503 unknown' : error.status === 503 ? '503 unavail.' : String(error.status);
      kinds.set(key, (kinds.get(key) ?? 0) + 1);
    }
    const first = errors[0]?.at;
    const last = errors[errors.length - 1]?.at;
    console.log(
      `| ${fault.name} | ${((fault.end - fault.start) / 1000).toFixed(1)} s | ${window.length} | ${
        errors.length ? [...kinds].map(([k, n]) => `${n} ${k}`).join(', ') : '0'
      } | ${errors.length ? `${((first! - fault.start) / 1000).toFixed(1)}–${((last! - fault.start) / 1000).toFixed(1)} s` : '—'} | ${
        errors.length ? `${(Math.max(0, last! - fault.end) / 1000).toFixed(1)} s` : '0 s'
      } |`,
    );
  });

  console.log(
    `\nwrites without a definite answer, resolved by re-reading: ` +
      `"unavailable" not applied ${resolutions.unavailableNotApplied}; ` +
      `"outcome unknown" applied ${resolutions.unknownApplied} / not applied ${resolutions.unknownNotApplied}; ` +
      `broken connection applied ${resolutions.brokenApplied} / not applied ${resolutions.brokenNotApplied}`,
  );
  console.log(
    `ledger: ${ledgerSize.ledger} tasks created (${ledgerSize.live} not deleted), ${ledgerSize.tasks} stored; ` +
      `500s ${verdict.internalErrors}, 5xx not problem+json ${verdict.notProblemJson}, lost ${verdict.lost.length}, ` +
      `duplicated ${verdict.duplicated.length}, parity mismatches ${verdict.parity.length}, ghost writes ${verdict.ghosts.length}`,
  );
  for (const line of [...verdict.lost, ...verdict.duplicated, ...verdict.parity, ...verdict.ghosts].slice(0, 20)) console.log(`  ${line}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
