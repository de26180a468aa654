// Starts the gateway's production build (as `npm start` runs it) for the
// benchmarks, and reports its CPU time and peak memory.
import { execFileSync, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { freePort } from '../../src/db/embedded-cluster.js';
import { projectRoot } from '../../src/db/migrate.js';
import { processCpuSeconds } from './cpu-usage.js';

export async function startGatewayProcess(env: Record<string, string>) {
  const port = await freePort();
  // The production build, with the node flags of `npm start` (package.json).
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: projectRoot, stdio: 'inherit' });
  const packageJson = JSON.parse(await readFile(`${projectRoot}/package.json`, 'utf8'));
  const [, ...startArgs] = (packageJson.scripts.start as string).split(/\s+/);
  // BENCH_NODE_ARGS adds node flags for profiling, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const extraArgs = process.env.BENCH_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...extraArgs, ...startArgs], {
    cwd: projectRoot,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (chunk) => (output += chunk));
  const url = `http://127.0.0.1:${port}`;
  for (let waited = 0; ; waited += 100) {
    if (child.exitCode !== null) throw new Error(`gateway exited during start-up:\n${output}`);
    try {
      if ((await fetch(`${url}/health/ready`)).ok) break;
    } catch {
      // not listening yet
    }
    if (waited > 60_000) throw new Error(`gateway did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid!,
    /**
     * CPU seconds (user + system) the process has used so far. Divided by the
     * requests served, it is the gateway's own cost per request, which other
     * load on a shared machine does not change the way it changes req/s.
     */
    cpuSeconds(): number {
      const seconds = processCpuSeconds(child.pid!);
      if (seconds === undefined) throw new Error(`cannot read the CPU time of the gateway (pid ${child.pid})`);
      return seconds;
    },
    /** Peak resident set size (VmHWM) in MB, read before the process ends. */
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
