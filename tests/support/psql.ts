// Whether the psql client is installed: the tests that run it are skipped without it.
import { execFileSync } from 'node:child_process';

export const psqlAvailable = (() => {
  try {
    execFileSync('psql', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
