// The load generators: wrk against the gateway, pgbench against PostgreSQL,
// each reduced to the same measurement.
import { execFile, execFileSync } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/db/migrate.js';
import { measureCpu, type CpuProcesses, type CpuUsed } from './cpu-usage.js';

const execFileAsync = promisify(execFile);

export interface Measurement {
  /** Completed requests (or transactions) per second. */
  rate: number;
  /** Completed requests (or transactions) in the whole run. */
  requests: number;
  p50Ms: number;
  p99Ms: number;
  /** Failed requests: connection errors, timeouts and non-2xx answers. */
  errors: number;
  /**
   * CPU µs per request (per transaction for pgbench) over the run, by process:
   * the gateway (gateway runs only), the PostgreSQL server, the load generator
   * (wrk or pgbench) and the whole machine. Undefined where it could not be read.
   */
  cpuMicrosPerRequest?: {
    gateway?: number;
    postgres?: number;
    loadGenerator?: number;
    machine?: number;
  };
}

/** Installs a Debian package when its command is missing (as root, as CI is). */
export async function ensureTool(command: string, debianPackage: string): Promise<void> {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return;
  } catch {
    process.stderr.write(`installing ${debianPackage} for ${command}…\n`);
  }
  execFileSync('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${debianPackage}`], {
    stdio: 'inherit',
  });
}

function perRequest(used: CpuUsed, requests: number): Measurement['cpuMicrosPerRequest'] {
  const micros = (seconds?: number) => (seconds === undefined || requests === 0 ? undefined : (seconds * 1e6) / requests);
  return {
    gateway: micros(used.gateway),
    postgres: micros(used.postgres),
    loadGenerator: micros(used.loadGenerator),
    machine: micros(used.machine),
  };
}

export function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

export async function runWrk(options: {
  url: string;
  op: string;
  dataFile: string;
  connections: number;
  durationSeconds: number;
  /** The processes whose CPU to measure over the run (the gateway's and PostgreSQL's). */
  cpu?: CpuProcesses;
}): Promise<Measurement> {
  // Only wrk is spawned and reaped inside the measured interval.
  const { result: { stdout }, used } = await measureCpu(options.cpu ?? {}, () => execFileAsync(
    'wrk',
    [
      '-t2',
      `-c${options.connections}`,
      `-d${options.durationSeconds}s`,
      '--timeout', '10s',
      '-s', path.join(projectRoot, 'scripts', 'bench', 'wrk', 'task-api.lua'),
      options.url,
    ],
    { env: { ...process.env, BENCH_OP: options.op, BENCH_DATA: options.dataFile }, maxBuffer: 16 * 1024 * 1024 },
  ));
  const line = stdout.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  const result = JSON.parse(line.slice('BENCH_RESULT '.length));
  return {
    rate: result.requests / (result.duration_us / 1e6),
    requests: result.requests,
    p50Ms: result.p50_us / 1000,
    p99Ms: result.p99_us / 1000,
    errors: result.connect_errors + result.read_errors + result.write_errors + result.status_errors + result.timeouts,
    cpuMicrosPerRequest: perRequest(used, result.requests),
  };
}

export async function runPgbench(options: {
  url: string;
  scriptFile: string;
  vars: Record<string, number>;
  connections: number;
  durationSeconds: number;
  workDir: string;
  /** pgbench's query mode; `prepared` parses each statement once per connection. */
  protocol: 'prepared' | 'extended';
  /** The processes whose CPU to measure over the run (PostgreSQL's). */
  cpu?: CpuProcesses;
}): Promise<Measurement> {
  const prefix = path.join(options.workDir, `pgbench-${path.basename(options.scriptFile, '.sql')}`);
  // Only pgbench is spawned and reaped inside the measured interval; its logs are read after.
  const { result: { stdout }, used } = await measureCpu(options.cpu ?? {}, () => execFileAsync(
    'pgbench',
    [
      '-n',
      `-c${options.connections}`,
      '-j2',
      `-T${options.durationSeconds}`,
      '-M', options.protocol,
      '-l', `--log-prefix=${prefix}`,
      ...Object.entries(options.vars).flatMap(([name, value]) => ['-D', `${name}=${value}`]),
      '-f', options.scriptFile,
      options.url,
    ],
    { cwd: options.workDir, maxBuffer: 16 * 1024 * 1024 },
  ));
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
  const failed = /number of failed transactions: (\d+)/.exec(stdout);
  const processed = /number of transactions actually processed: (\d+)/.exec(stdout);
  if (!tps || !processed) throw new Error(`pgbench printed no tps:\n${stdout}`);

  // Per-transaction logs: the third column is the latency in microseconds.
  const latencies: number[] = [];
  const logs = (await readdir(options.workDir)).filter((name) => name.startsWith(path.basename(prefix)));
  for (const name of logs) {
    const file = path.join(options.workDir, name);
    for (const row of (await readFile(file, 'utf8')).split('\n')) {
      const latency = Number(row.split(' ')[2]);
      if (Number.isFinite(latency) && row) latencies.push(latency);
    }
    await rm(file);
  }
  latencies.sort((a, b) => a - b);
  return {
    rate: Number(tps[1]),
    requests: Number(processed[1]),
    p50Ms: percentile(latencies, 0.5) / 1000,
    p99Ms: percentile(latencies, 0.99) / 1000,
    errors: failed ? Number(failed[1]) : 0,
    cpuMicrosPerRequest: perRequest(used, Number(processed[1])),
  };
}
