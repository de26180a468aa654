// Starts the gateway's production build (as `npm start` runs it) for the
// benchmarks, or another Node.js server with the same node flags, and reports
// its peak memory (its CPU time is read by cpu-usage.ts from its pid).
import { execFileSync, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { freePort } from '../../src/db/embedded-cluster.js';
import { projectRoot } from '../../src/db/migrate.js';

export type ServerProcess = Awaited<ReturnType<typeof startNodeServer>>;

export async function startGatewayProcess(env: Record<string, string>): Promise<ServerProcess> {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: projectRoot, stdio: 'inherit' });
  const { nodeFlags, script } = await startCommand();
  return startNodeServer(nodeFlags, script, { SHUTDOWN_GRACE_MS: '0', ...env }, '/health/ready');
}

/** The bare node:http server of http-floor-server.mjs, answering every request with `body`. */
export async function startHttpFloor(body: Buffer): Promise<ServerProcess> {
  const { nodeFlags } = await startCommand();
  return startNodeServer(nodeFlags, 'scripts/bench/http-floor-server.mjs', { FLOOR_BODY_BASE64: body.toString('base64') }, '/');
}

/** The node flags and script of `npm start` (package.json). */
async function startCommand() {
  const packageJson = JSON.parse(await readFile(`${projectRoot}/package.json`, 'utf8'));
  const [, ...args] = (packageJson.scripts.start as string).split(/\s+/);
  return { nodeFlags: args.slice(0, -1), script: args[args.length - 1] };
}

async function startNodeServer(nodeFlags: string[], script: string, env: Record<string, string>, readyPath: string) {
  const port = await freePort();
  // BENCH_NODE_ARGS adds node flags for profiling, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const extraArgs = process.env.BENCH_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...extraArgs, ...nodeFlags, script], {
    cwd: projectRoot,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (chunk) => (output += chunk));
  const url = `http://127.0.0.1:${port}`;
  for (let waited = 0; ; waited += 100) {
    if (child.exitCode !== null) throw new Error(`${script} exited during start-up:\n${output}`);
    try {
      if ((await fetch(`${url}${readyPath}`)).ok) break;
    } catch {
      // not listening yet
    }
    if (waited > 60_000) throw new Error(`${script} did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid!,
    /** Starts peakRssMb afresh from the current RSS (Linux's clear_refs "5"). */
    async resetPeakRss() {
      await writeFile(`/proc/${child.pid}/clear_refs`, '5').catch(() => undefined);
    },
    /** Peak resident set size (VmHWM) in MB since start or the last resetPeakRss. */
    async peakRssMb() {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
      const match = /VmHWM:\s+(\d+) kB/.exec(status);
      return match ? Math.round(Number(match[1]) / 1024) : undefined;
    },
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}
