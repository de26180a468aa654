// Operator errors at start-up are one line naming the setting to change, with
// no stack trace, and the listening address is checked before any database
// work. The HTTP timeouts are read from the environment.
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { runServerUntilExit, startServerProcess, type ServerExit } from './support/server-process.js';

const tempDirs: string[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'task-api-startup-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of tempDirs) {
    await chmod(dir, 0o700).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
});

function expectOneLine(exit: ServerExit, setting: string) {
  const output = `exit ${exit.code}\nstdout: ${exit.stdout}\nstderr: ${exit.stderr}`;
  expect(exit.code, output).not.toBe(0);
  expect(exit.code, output).not.toBeNull();
  expect(exit.stderr.trim().split('\n'), output).toHaveLength(1);
  expect(exit.stderr, output).toMatch(/^task-api: /);
  expect(exit.stderr, output).toContain(setting);
  expect(exit.stderr, output).not.toMatch(/\n\s+at |EADDRINUSE|Error:/);
  expect(exit.stdout, output).not.toMatch(/listening on/i);
}

describe('start-up failures an operator fixes', () => {
  it('PORT in use: one line naming PORT, before the embedded database is created', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const dataDir = await freshDir();
    try {
      const exit = await runServerUntilExit({ PORT: String(port), DATA_DIR: dataDir });
      expectOneLine(exit, `PORT ${port}`);
      expect(exit.stderr).toMatch(/already in use/);
      // No database work happened: DATA_DIR is as empty as it was.
      expect(await readdir(dataDir)).toEqual([]);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('PORT in use with DATABASE_URL: exits at once, without waiting on the database', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      // A database that never answers, retried for a minute: the port check comes first.
      const exit = await runServerUntilExit({ PORT: String(port), DATABASE_URL: 'postgres://authenticator@127.0.0.1:1/db', DB_CONNECT_RETRY_MS: '60000' });
      expectOneLine(exit, `PORT ${port}`);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('HOST that is not an address of this machine: one line naming HOST', async () => {
    const exit = await runServerUntilExit({ HOST: '192.0.2.1', DATA_DIR: await freshDir() });
    expectOneLine(exit, 'HOST 192.0.2.1');
  });

  it('DATA_DIR that is a file: one line naming DATA_DIR', async () => {
    const file = path.join(await freshDir(), 'not-a-directory');
    await writeFile(file, 'x');
    const exit = await runServerUntilExit({ DATA_DIR: path.join(file, 'data') });
    expectOneLine(exit, 'DATA_DIR');
    expect(exit.stderr).toContain(file);
  });

  // Root may write anywhere: as root, the gateway runs as nobody (65534) here.
  const asRoot = process.getuid?.() === 0;
  const canDropPrivileges = asRoot && spawnSync('setpriv', ['--version']).status === 0;
  // ... and nobody must be able to reach the project's code: not so in a clone
  // inside a directory only root may enter (/root/app, a mktemp -d).
  const nobodyReachesProject =
    canDropPrivileges &&
    spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', path.resolve('node_modules/tsx/package.json')]).status === 0;
  if (asRoot && !nobodyReachesProject) {
    console.warn('tests/process-startup-errors.test.ts: the unwritable-DATA_DIR case needs the user nobody to reach this clone (setpriv, and no 0700 directory above it): skipped');
  }
  it.skipIf(asRoot && !nobodyReachesProject)('DATA_DIR that is not writable by the user: one line naming DATA_DIR', async () => {
    const parent = await freshDir();
    await chmod(parent, 0o755);
    await mkdir(path.join(parent, 'locked'));
    await chmod(path.join(parent, 'locked'), 0o555);
    const exit = await runServerUntilExit({ DATA_DIR: path.join(parent, 'locked', 'data'), HOME: tmpdir() }, 30_000, asRoot ? { uid: 65534 } : {});
    expectOneLine(exit, 'DATA_DIR');
    expect(exit.stderr).toMatch(/not writable/);
  });
});

describe('HTTP timeouts come from the environment', () => {
  it('HTTP_HEADERS_TIMEOUT_MS: a client dribbling headers is dropped by the real process', async () => {
    const server = await startServerProcess({
      DATABASE_URL: inject('appUrl'),
      DB_PREPARED_STATEMENTS: process.env.TEST_PREPARED_STATEMENTS ?? 'true',
      HTTP_HEADERS_TIMEOUT_MS: '600',
      HTTP_REQUEST_TIMEOUT_MS: '1000',
    });
    try {
      const { port } = new URL(server.url);
      const closed = await new Promise<{ closed: boolean; response: string }>((resolve) => {
        const socket = net.connect(Number(port), '127.0.0.1');
        let response = '';
        socket.on('data', (chunk) => (response += chunk));
        socket.on('error', () => {});
        const writer = setInterval(() => socket.write('X-Slow: 1\r\n'), 100);
        const bound = setTimeout(() => done(false), 8_000);
        const done = (closedByServer: boolean) => {
          clearInterval(writer);
          clearTimeout(bound);
          socket.destroy();
          resolve({ closed: closedByServer, response });
        };
        socket.on('close', () => done(true));
        socket.write('GET /api/tasks HTTP/1.1\r\nHost: x\r\n');
      });
      expect(closed.closed).toBe(true);
      expect(closed.response).toMatch(/^HTTP\/1\.1 408/);
      expect(closed.response).toMatch(/application\/problem\+json/);
    } finally {
      await server.kill();
    }
  });
});
