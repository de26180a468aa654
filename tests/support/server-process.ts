// Runs the real gateway as a separate process (`tsx src/main.ts`), for tests
// of what only a process can show: start-up, SIGTERM, SIGKILL, replicas.
import { spawn, type ChildProcess } from 'node:child_process';
import { projectRoot } from '../../src/db/migrate.js';
import { TEST_JWT_SECRET } from './http.js';

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr. */
  output(): string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}


export async function startServerProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<ServerProcess> {
  // One process (no tsx wrapper), so a signal reaches the server itself.
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      JWT_SECRET: TEST_JWT_SECRET,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      // No drain grace unless a test asks for one: SIGTERM then stops at once.
      SHUTDOWN_GRACE_MS: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const check = () => {
      const match = /listening on (http:\/\/[^\s]+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) during start-up:\n${output}`));
    });
  });

  return {
    url,
    child,
    output: () => output,
    exited,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface ServerExit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the gateway as startServerProcess does and waits for it to exit (for
 * start-up failures); a process still running after `timeoutMs` is killed
 * and reported as an error.
 */
export function runServerUntilExit(env: Record<string, string>, timeoutMs = 30_000, options: { uid?: number } = {}): Promise<ServerExit> {
  const node = [process.execPath, '--import', 'tsx', 'src/main.ts'];
  // As root, `uid` runs the gateway as another user (util-linux setpriv).
  const [command, ...args] =
    options.uid === undefined ? node : ['setpriv', `--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups', ...node];
  const child = spawn(command, args, {
    cwd: projectRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, JWT_SECRET: TEST_JWT_SECRET, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the gateway did not exit within ${timeoutMs} ms:\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
