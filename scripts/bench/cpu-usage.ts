// CPU time per process from /proc (Linux), for the benchmark's per-request
// CPU columns: the gateway, the PostgreSQL server, the load generator (wrk or
// pgbench) and the whole machine, each read before and after a run.
//
// /proc/<pid>/stat has four CPU counters, in clock ticks: utime and stime are
// what the process itself (all its threads) has used; cutime and cstime are
// what its children used, added to it when the parent reaps (waits for) a
// child that exited. So:
//   - PostgreSQL = the postmaster's utime + stime + cutime + cstime (the last
//     two hold the backends that already exited, e.g. pgbench's connections)
//     + utime + stime of the postmaster's live children (backends and
//     background processes);
//   - wrk and pgbench are children of this process, spawned and awaited: once
//     reaped, their CPU is in this process's cutime + cstime.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's counters (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcStat {
  comm: string;
  ppid: number;
  /** utime + stime, in seconds. */
  own: number;
  /** cutime + cstime (reaped children), in seconds. */
  children: number;
}

function readStat(pid: number | 'self'): ProcStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone (or not Linux)
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split
  // what follows the last ')'. Fields from there: 0 state, 1 ppid, 11 utime,
  // 12 stime, 13 cutime, 14 cstime.
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  return {
    comm: stat.slice(stat.indexOf('(') + 1, close),
    ppid: Number(fields[1]),
    own: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS,
    children: (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS,
  };
}

function allPids(): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number);
}

const processExists = (pid: number) => readStat(pid) !== undefined;

/** CPU seconds (user + system, all threads) a process has used so far. */
export function processCpuSeconds(pid: number): number | undefined {
  return readStat(pid)?.own;
}

/** CPU seconds of this process's children that have been reaped. */
export function reapedChildrenCpuSeconds(): number {
  return readStat('self')!.children;
}

/**
 * CPU seconds of a PostgreSQL server so far: the postmaster, its reaped
 * children and its live ones. A child reaped between reading it and reading
 * the postmaster would count twice, so the reading is repeated until every
 * child read is still there after the postmaster was read.
 */
export function postgresCpuSeconds(postmasterPid: number): number | undefined {
  for (let attempt = 0; attempt < 10; attempt++) {
    const children = new Map<number, number>();
    for (const pid of allPids()) {
      const stat = readStat(pid);
      if (stat?.ppid === postmasterPid) children.set(pid, stat.own);
    }
    const postmaster = readStat(postmasterPid);
    if (!postmaster) return undefined;
    if ([...children.keys()].every(processExists)) {
      return postmaster.own + postmaster.children + [...children.values()].reduce((sum, s) => sum + s, 0);
    }
  }
  return undefined;
}

/**
 * Busy CPU seconds of the whole machine (all cores) from the first line of
 * /proc/stat: user, nice, system, irq and softirq. Not idle or iowait; not
 * steal (time the hypervisor gave our virtual CPUs to someone else, which no
 * process here is charged for); not guest and guest_nice, which are already
 * part of user and nice.
 */
export function machineBusyCpuSeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const [user, nice, system, , , irq, softirq] = line.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq) / CLOCK_TICKS;
}

const looksLikePostgres = (stat: ProcStat | undefined) =>
  stat !== undefined && (stat.comm === 'postgres' || stat.comm.startsWith('postgres:') || stat.comm === 'postmaster');

/** The postmaster's pid from a data directory's postmaster.pid, if it names a live postgres process. */
export function postmasterFromDataDirectory(dataDirectory: string): number | undefined {
  try {
    const pid = Number(readFileSync(`${dataDirectory}/postmaster.pid`, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 && looksLikePostgres(readStat(pid)) ? pid : undefined;
  } catch {
    return undefined; // not readable, or the server is on another machine
  }
}

/**
 * The postmaster of the server a backend belongs to: the backend's parent, if
 * that backend is visible here (same machine, same pid namespace).
 */
export function postmasterOfBackend(backendPid: number): number | undefined {
  const backend = readStat(backendPid);
  if (!looksLikePostgres(backend)) return undefined;
  return looksLikePostgres(readStat(backend!.ppid)) ? backend!.ppid : undefined;
}

/** The only postgres process here whose parent is not postgres, if there is exactly one. */
export function onlyPostmasterHere(): number | undefined {
  const roots = allPids().filter((pid) => {
    const stat = readStat(pid);
    return looksLikePostgres(stat) && !looksLikePostgres(readStat(stat!.ppid));
  });
  return roots.length === 1 ? roots[0] : undefined;
}

export interface CpuProcesses {
  gatewayPid?: number;
  postmasterPid?: number;
}

/** CPU seconds used during one run, by process; undefined where it could not be read. */
export interface CpuUsed {
  gateway?: number;
  postgres?: number;
  loadGenerator: number;
  machine: number;
}

// The machine is read closest to the run, so it does not include this
// process's own scanning of /proc (the processes measured are idle then).
function snapshot(processes: CpuProcesses, when: 'before' | 'after'): CpuUsed {
  const machineAndLoad = () => ({ loadGenerator: reapedChildrenCpuSeconds(), machine: machineBusyCpuSeconds() });
  const first = when === 'after' ? machineAndLoad() : undefined;
  const servers = {
    gateway: processes.gatewayPid === undefined ? undefined : processCpuSeconds(processes.gatewayPid),
    postgres: processes.postmasterPid === undefined ? undefined : postgresCpuSeconds(processes.postmasterPid),
  };
  return { ...servers, ...(first ?? machineAndLoad()) };
}

/**
 * Runs `run` (which must spawn and reap the load generator, and nothing else)
 * and returns the CPU each process used meanwhile. The readings are
 * synchronous, so nothing else of this process runs between them and the run.
 */
export async function measureCpu<T>(processes: CpuProcesses, run: () => Promise<T>): Promise<{ result: T; used: CpuUsed }> {
  const before = snapshot(processes, 'before');
  const result = await run();
  const after = snapshot(processes, 'after');
  const delta = (a?: number, b?: number) => (a === undefined || b === undefined ? undefined : b - a);
  return {
    result,
    used: {
      gateway: delta(before.gateway, after.gateway),
      postgres: delta(before.postgres, after.postgres),
      loadGenerator: after.loadGenerator - before.loadGenerator,
      machine: after.machine - before.machine,
    },
  };
}
