// docker-compose.yml, Dockerfile and .dockerignore, checked without a Docker
// engine: the compose file is resolved by `docker-compose config` (Debian's
// docker-compose package; the tests that need it are skipped, saying so, when
// it is not installed), and the Dockerfile's shape is read as text. Building
// the image and running the stack need an engine and are not done here; see
// docs/docker.md for what was validated and how.
import { execFile, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// `yaml` is installed with @fastify/swagger, a runtime dependency.
import { parse as parseYaml } from 'yaml';
import { projectRoot } from '../src/db/migrate.js';

const execFileAsync = promisify(execFile);
const COMPOSE_FILE = path.join(projectRoot, 'docker-compose.yml');

const composeVersion = (() => {
  try {
    return execFileSync('docker-compose', ['version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\n')[0];
  } catch {
    return undefined;
  }
})();
const NO_COMPOSE = 'docker-compose is not installed (apt-get install docker-compose): compose file not resolved';
if (!composeVersion) console.warn(`tests/ecosystem-compose.test.ts: ${NO_COMPOSE}`);

interface ComposeService {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  command?: string[] | string;
  environment?: Record<string, string | null>;
  ports?: (string | { published: string | number; target: number })[];
  depends_on?: Record<string, { condition: string }> | string[];
  profiles?: string[];
}
interface ComposeConfig {
  services: Record<string, ComposeService>;
}

// ---------------------------------------------------------------------------

const composeSuiteName = composeVersion
  ? `docker-compose.yml, resolved by ${composeVersion} (no engine needed)`
  : `docker-compose.yml: skipped, ${NO_COMPOSE}`;

describe.skipIf(!composeVersion)(composeSuiteName, () => {
  let workDir: string;
  let emptyEnvFile: string;

  /** `docker-compose config` with only the file's own defaults: no .env, no secrets from this shell. */
  async function composeConfig(args: string[] = [], extraEnv: Record<string, string> = {}): Promise<ComposeConfig> {
    const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
    for (const name of ['POSTGRES_PASSWORD', 'AUTHENTICATOR_PASSWORD', 'JWT_SECRET', 'COMPOSE_PROFILES', 'COMPOSE_FILE', 'DOCKER_HOST']) {
      if (!(name in extraEnv)) delete env[name];
    }
    const { stdout } = await execFileAsync(
      'docker-compose',
      ['--env-file', emptyEnvFile, '-f', COMPOSE_FILE, ...args, 'config'],
      { cwd: workDir, env },
    );
    return parseYaml(stdout) as ComposeConfig;
  }

  const env = (service: ComposeService) => (service.environment ?? {}) as Record<string, string>;
  const dependsOn = (service: ComposeService) => service.depends_on as Record<string, { condition: string }>;
  const publishedPorts = (service: ComposeService) =>
    (service.ports ?? []).map((port) => (typeof port === 'string' ? port : `${port.published}:${port.target}`));
  const buildContext = (service: ComposeService) =>
    typeof service.build === 'string' ? service.build : service.build?.context;

  let base: ComposeConfig;
  let withPostgrest: ComposeConfig;

  beforeAll(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), 'task-api-compose-'));
    emptyEnvFile = path.join(workDir, 'empty.env');
    await writeFile(emptyEnvFile, '');
    base = await composeConfig();
    withPostgrest = await composeConfig(['--profile', 'postgrest']);
  });

  afterAll(async () => {
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('resolves (exit 0) with and without --profile postgrest; postgrest only behind its profile', () => {
    expect(Object.keys(withPostgrest.services).sort()).toEqual(['api', 'db', 'migrate', 'postgrest']);
    // docker-compose 1.x lists profiled services in `config` whatever the
    // profiles; 2.x leaves inactive ones out. Either way it is opt-in.
    const baseNames = Object.keys(base.services).sort();
    expect([['api', 'db', 'migrate'], ['api', 'db', 'migrate', 'postgrest']]).toContainEqual(baseNames);
    expect(withPostgrest.services.postgrest.profiles).toEqual(['postgrest']);
    for (const name of ['db', 'migrate', 'api']) expect(withPostgrest.services[name].profiles ?? []).toEqual([]);
  });

  it('db is postgres:17 with a health check', () => {
    const db = withPostgrest.services.db as ComposeService & { healthcheck?: { test: string[] } };
    expect(db.image).toBe('postgres:17');
    expect(env(db).POSTGRES_DB).toBe('task_api');
    expect(db.healthcheck?.test.join(' ')).toMatch(/pg_isready/);
  });

  it('migrate runs npm run db:migrate from the Dockerfile with the owner URL, once db is healthy, and exits', () => {
    const migrate = withPostgrest.services.migrate as ComposeService & { restart?: string };
    expect(path.resolve(workDir, buildContext(migrate) ?? '')).toBe(projectRoot);
    expect([migrate.command].flat().join(' ')).toMatch(/npm run db:migrate/);
    const owner = new URL(env(migrate).DATABASE_OWNER_URL);
    expect({ user: owner.username, host: owner.hostname, db: owner.pathname }).toEqual({ user: 'postgres', host: 'db', db: '/task_api' });
    expect(owner.password).toBe(env(withPostgrest.services.db).POSTGRES_PASSWORD);
    expect(env(migrate).AUTHENTICATOR_PASSWORD).toBeTruthy();
    expect(dependsOn(migrate).db.condition).toBe('service_healthy');
    expect(migrate.restart).toBe('no');
  });

  it('api is the gateway built from the Dockerfile, as authenticator, after migrate completed', () => {
    const api = withPostgrest.services.api;
    const migrate = withPostgrest.services.migrate;
    expect(path.resolve(workDir, buildContext(api) ?? '')).toBe(projectRoot);
    expect(api.image).toBe(migrate.image);
    const url = new URL(env(api).DATABASE_URL);
    expect({ user: url.username, host: url.hostname, db: url.pathname }).toEqual({ user: 'authenticator', host: 'db', db: '/task_api' });
    expect(decodeURIComponent(url.password)).toBe(env(migrate).AUTHENTICATOR_PASSWORD);
    expect(Buffer.byteLength(env(api).JWT_SECRET)).toBeGreaterThanOrEqual(32);
    expect(env(api).HOST).toBe('0.0.0.0');
    expect(publishedPorts(api)).toContain('8000:8000');
    expect(dependsOn(api).migrate.condition).toBe('service_completed_successfully');
  });

  it('postgrest uses the same login role, schema api, anon and the gateway JWT secret', () => {
    const postgrest = withPostgrest.services.postgrest;
    const api = withPostgrest.services.api;
    expect(postgrest.image).toMatch(/^postgrest\/postgrest(:|$)/);
    const pgrst = env(postgrest);
    const uri = new URL(pgrst.PGRST_DB_URI);
    const apiUrl = new URL(env(api).DATABASE_URL);
    expect(uri.username).toBe('authenticator');
    expect(`${uri.host}${uri.pathname}`).toBe(`${apiUrl.host}${apiUrl.pathname}`);
    expect(uri.password).toBe(apiUrl.password);
    expect(pgrst.PGRST_DB_SCHEMAS).toBe('api');
    expect(pgrst.PGRST_DB_ANON_ROLE).toBe('anon');
    expect(pgrst.PGRST_JWT_SECRET).toBe(env(api).JWT_SECRET);
    expect(dependsOn(postgrest).migrate.condition).toBe('service_completed_successfully');
  });

  it('secrets come from the environment: one value each reaches every service that needs it', async () => {
    const secrets = {
      POSTGRES_PASSWORD: 'pg-from-env',
      AUTHENTICATOR_PASSWORD: 'auth-from-env',
      JWT_SECRET: 'a-jwt-secret-from-the-environment-0123456789',
    };
    const config = await composeConfig(['--profile', 'postgrest'], secrets);
    const { db, migrate, api, postgrest } = config.services;
    expect(env(db).POSTGRES_PASSWORD).toBe(secrets.POSTGRES_PASSWORD);
    expect(new URL(env(migrate).DATABASE_OWNER_URL).password).toBe(secrets.POSTGRES_PASSWORD);
    expect(env(migrate).AUTHENTICATOR_PASSWORD).toBe(secrets.AUTHENTICATOR_PASSWORD);
    expect(new URL(env(api).DATABASE_URL).password).toBe(secrets.AUTHENTICATOR_PASSWORD);
    expect(new URL(env(postgrest).PGRST_DB_URI).password).toBe(secrets.AUTHENTICATOR_PASSWORD);
    expect(env(api).JWT_SECRET).toBe(secrets.JWT_SECRET);
    expect(env(postgrest).PGRST_JWT_SECRET).toBe(secrets.JWT_SECRET);
  });
});

// ---------------------------------------------------------------------------

describe('Dockerfile and .dockerignore (read as text)', () => {
  const dockerfile = readFileSync(path.join(projectRoot, 'Dockerfile'), 'utf8');
  // Instructions, with line continuations joined and comments dropped.
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const stages: string[][] = [];
  for (const line of instructions) {
    if (/^FROM\s/i.test(line)) stages.push([]);
    stages.at(-1)?.push(line);
  }
  const finalStage = stages.at(-1) ?? [];
  const packageJson = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
    scripts: Record<string, string>;
  };

  it('is multi-stage: production dependencies installed in a named stage and copied into the final one', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const named = stages.slice(0, -1).map((stage) => /^FROM\s+\S+\s+AS\s+(\S+)/i.exec(stage[0])?.[1]).filter(Boolean);
    expect(named.length).toBeGreaterThanOrEqual(1);
    expect(finalStage.some((line) => new RegExp(`^COPY\\s+--from=(${named.join('|')})\\s`, 'i').test(line))).toBe(true);
  });

  it('installs from the lock file with npm ci, and the final node_modules come from an npm ci --omit=dev stage', () => {
    const install = instructions.filter((line) => /^RUN\s.*\bnpm\s+(ci|install|i)\b/i.test(line));
    expect(install.length).toBeGreaterThan(0);
    for (const line of install) expect(line).toMatch(/\bnpm ci\b/);
    expect(instructions.some((line) => /^COPY\s+package\.json\s+package-lock\.json\s/i.test(line))).toBe(true);
    const copied = finalStage.map((line) => /^COPY\s+--from=(\S+)\s+\S*node_modules\b/i.exec(line)?.[1]).find(Boolean);
    expect(copied).toBeTruthy();
    const source = stages.find((stage) => new RegExp(`^FROM\\s+\\S+\\s+AS\\s+${copied}$`, 'i').test(stage[0]))!;
    expect(source.some((line) => /^RUN\s.*\bnpm ci\b[^&;]*--omit=dev/i.test(line))).toBe(true);
  });

  it('runs as a non-root user in the final stage', () => {
    const users = finalStage.filter((line) => /^USER\s/i.test(line)).map((line) => line.split(/\s+/)[1]);
    expect(users.length).toBeGreaterThan(0);
    expect(['root', '0', '0:0', 'root:root']).not.toContain(users.at(-1));
    // The switch comes after the last COPY: the app's files stay root's, read-only to the app.
    const userLines = finalStage.map((line, i) => (/^USER\s/i.test(line) ? i : -1)).filter((i) => i >= 0);
    const copyLines = finalStage.map((line, i) => (/^COPY\s/i.test(line) ? i : -1)).filter((i) => i >= 0);
    expect(userLines.at(-1)).toBeGreaterThan(copyLines.at(-1) ?? -1);
  });

  it('starts the gateway through tsx (src/main.ts), a production dependency, or from a build stage\'s output', () => {
    const cmd = finalStage.find((line) => /^CMD\s/i.test(line)) ?? '';
    const argv = JSON.parse(cmd.replace(/^CMD\s+/i, '')) as string[];
    expect(argv[0]).toBe('node');
    if (argv.includes('tsx')) {
      // TypeScript run as is: tsx must survive --omit=dev.
      expect(argv.slice(-3)).toEqual(['--import', 'tsx', 'src/main.ts']);
      expect(packageJson.dependencies.tsx).toBeTruthy();
    } else {
      // Compiled: a stage builds it, the final stage copies the output, and
      // runs it exactly as `npm start` does.
      expect(instructions.some((line) => /^RUN\s.*\bnpm run build\b/i.test(line))).toBe(true);
      expect(finalStage.some((line) => /^COPY\s+--from=\S+\s+\S*dist\b/i.test(line))).toBe(true);
      expect(argv.join(' ')).toBe(packageJson.scripts.start);
    }
    // The compose migrate service runs npm run db:migrate in this image: tsx and dbmate at run time.
    expect(packageJson.scripts['db:migrate']).toMatch(/^tsx /);
    expect(packageJson.dependencies.tsx).toBeTruthy();
    expect(packageJson.dependencies.dbmate).toBeTruthy();
    expect(finalStage.some((line) => /^ENV\s.*\bHOST=0\.0\.0\.0\b/i.test(line))).toBe(true);
  });

  it('every package src/ imports at run time is a production dependency (the image has no devDependencies)', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const full = path.join(dir, name);
        if (statSync(full).isDirectory()) walk(full);
        else if (full.endsWith('.ts')) files.push(full);
      }
    };
    walk(path.join(projectRoot, 'src'));
    const imported = new Set<string>();
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/^\s*import\s+(?!type\s)[^'"]*?from\s+'([^'.][^']*)'|^\s*export\s+[^'"]*?from\s+'([^'.][^']*)'/gm)) {
        const specifier = match[1] ?? match[2];
        if (specifier.startsWith('node:')) continue;
        const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
        imported.add(name);
      }
    }
    expect(imported.size).toBeGreaterThan(0);
    const notProduction = [...imported].filter((name) => !packageJson.dependencies[name]);
    expect(notProduction).toEqual([]);
  });

  it('copies only what exists, and .dockerignore keeps out node_modules, .git, .data and local env files but not what the image copies', () => {
    const ignore = readFileSync(path.join(projectRoot, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));
    for (const pattern of ['node_modules', '.git', '.data', '.env']) expect(ignore).toContain(pattern);
    const copied = finalStage
      .concat(stages.flat())
      .filter((line) => /^COPY\s/i.test(line) && !/--from=/i.test(line))
      .flatMap((line) => line.split(/\s+/).slice(1, -1));
    expect(copied.length).toBeGreaterThan(0);
    for (const source of new Set(copied)) {
      expect(statSync(path.join(projectRoot, source)), source).toBeTruthy();
      expect(ignore, `${source} is copied but ignored`).not.toContain(source);
    }
  });
});
