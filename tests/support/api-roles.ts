// The roles the migrations create (cluster-wide), read from migrations/ so
// that a migration adding one needs no test edited.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../src/db/migrate.js';

/** Every role a `create role` in migrations/ makes, sorted by name. */
export const API_ROLES: readonly string[] = (() => {
  const dir = path.join(projectRoot, 'migrations');
  const text = readdirSync(dir).map((file) => readFileSync(path.join(dir, file), 'utf8')).join('\n');
  return [...new Set([...text.matchAll(/^\s*create role (\w+)/gm)].map((match) => match[1]))].sort();
})();
