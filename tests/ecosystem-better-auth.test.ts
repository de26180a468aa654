// `npm run e2e:better-auth` (scripts/better-auth-e2e.ts) as CI runs it: the
// real gateway process against a Better Auth-shaped JWKS stand-in, driven over
// HTTP. It prints PASS/FAIL per step and must exit 0 within a minute.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TIMEOUT_MS = 58_000;

function runScript(): Promise<{ code: number | null; output: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/better-auth-e2e.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`scripts/better-auth-e2e.ts did not finish in ${TIMEOUT_MS} ms:\n${output}`));
    }, TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: Date.now() - started });
    });
  });
}

describe('npm run e2e:better-auth', () => {
  it('passes every step and exits 0 in under a minute', async () => {
    const { code, output, ms } = await runScript();
    const lines = output.split('\n');
    const failed = lines.filter((line) => line.startsWith('FAIL'));
    expect(failed, output).toEqual([]);
    expect(code, output).toBe(0);
    expect(ms).toBeLessThan(60_000);

    const passed = lines.filter((line) => line.startsWith('PASS'));
    for (const expected of [
      /gateway starts .*JWKS_URL/,
      /creates a task/,
      /lists both tasks/,
      /toggles a task/,
      /user B sees none of user A's tasks/,
      /deletes a task/,
      /refused with 401/,
      /rotated signing key is picked up/,
      /stops cleanly/,
    ]) {
      expect(passed.some((line) => expected.test(line)), `no PASS line matching ${expected}:\n${output}`).toBe(true);
    }
    expect(output).toMatch(/\d+ passed, 0 failed/);
  }, 60_000);
});
