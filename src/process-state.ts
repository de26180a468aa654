// Whether a pid names a running process. kill(pid, 0) also finds zombies,
// which a process killed outright stays until its parent reaps it (in a
// container whose init does not reap, for good), so /proc is asked too.
import { existsSync, readFileSync } from 'node:fs';

const hasProc = () => existsSync('/proc/self/stat');

/** Fields of /proc/<pid>/stat from the state on (index 0: state, 19: start time). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** When the process started (clock ticks since boot): '' without /proc, undefined if it does not exist. */
export function startTimeOf(pid: number): string | undefined {
  if (!hasProc()) return '';
  return statFields(pid)?.[19];
}

export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!hasProc()) return true;
  const fields = statFields(pid);
  return fields !== undefined && fields[0] !== 'Z';
}
