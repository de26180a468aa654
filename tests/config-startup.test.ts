// Configuration is validated up front, and a server that could not verify
// tokens refuses to start (fail closed). On the embedded default, the
// development-token flow works: `npm run token -- <user>` prints a token
// signed with the secret kept in DATA_DIR.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { createTokenVerifier } from '../src/auth/token-verifier.js';
import { ConfigError, loadConfig } from '../src/config.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TSX = path.join(ROOT, 'node_modules', '.bin', 'tsx');
const SECRET = 'a-production-secret-of-at-least-32-bytes';

/** The problems loadConfig reports for `env`, or [] when it accepts it. */
function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain('invalid configuration');
    return (error as ConfigError).problems;
  }
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8000,
      host: '127.0.0.1',
      dataDir: './.data',
      jwtClockToleranceSeconds: 5,
      corsOrigins: [],
    });
    expect(config.databaseUrl).toBeUndefined();
    expect(config.jwtSecret).toBeUndefined();
    expect(config.jwksUrl).toBeUndefined();
    expect(config.jwtIssuer).toBeUndefined();
    expect(config.jwtAudience).toBeUndefined();
  });

  it('empty or blank variables count as unset', () => {
    const config = loadConfig({ PORT: '', HOST: '  ', DATA_DIR: '', JWT_CLOCK_TOLERANCE: ' ', JWT_SECRET: '' });
    expect(config).toMatchObject({ port: 8000, host: '127.0.0.1', dataDir: './.data', jwtClockToleranceSeconds: 5 });
    expect(config.jwtSecret).toBeUndefined();
  });

  it('reads every documented variable', () => {
    const config = loadConfig({
      PORT: '9001',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgresql://authenticator:pw@db.example.com/app?sslmode=require',
      DATA_DIR: '/var/lib/tasks',
      JWT_SECRET: SECRET,
      JWKS_URL: 'https://auth.example.com/api/auth/jwks',
      JWT_ISSUER: 'https://auth.example.com',
      JWT_AUDIENCE: 'https://api.example.com, https://other.example.com',
      JWT_CLOCK_TOLERANCE: '30',
      CORS_ORIGINS: 'https://app.example.com, http://localhost:3000',
    });
    expect(config).toMatchObject({
      port: 9001,
      host: '0.0.0.0',
      databaseUrl: 'postgresql://authenticator:pw@db.example.com/app?sslmode=require',
      dataDir: '/var/lib/tasks',
      jwtSecret: SECRET,
      jwksUrl: 'https://auth.example.com/api/auth/jwks',
      jwtIssuer: 'https://auth.example.com',
      jwtAudience: ['https://api.example.com', 'https://other.example.com'],
      jwtClockToleranceSeconds: 30,
      corsOrigins: ['https://app.example.com', 'http://localhost:3000'],
    });
  });

  describe('fails closed without a way to verify tokens', () => {
    it.each([
      ['neither key', {}],
      ['a blank JWT_SECRET and a blank JWKS_URL', { JWT_SECRET: '   ', JWKS_URL: '' }],
    ])('DATABASE_URL with %s is a ConfigError naming JWT_SECRET and JWKS_URL', (_name, keys) => {
      const problems = problemsOf({ DATABASE_URL: 'postgres://authenticator@db.example.com/app', ...keys });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain('DATABASE_URL');
      expect(problems[0]).toContain('JWT_SECRET');
      expect(problems[0]).toContain('JWKS_URL');
    });

    it('DATABASE_URL with either key is accepted', () => {
      const databaseUrl = 'postgres://authenticator@db.example.com/app';
      expect(problemsOf({ DATABASE_URL: databaseUrl, JWT_SECRET: SECRET })).toEqual([]);
      expect(problemsOf({ DATABASE_URL: databaseUrl, JWKS_URL: 'https://auth.example.com/api/auth/jwks' })).toEqual([]);
    });

    it('the embedded default (no DATABASE_URL) needs no key: a development secret is generated', () => {
      expect(problemsOf({})).toEqual([]);
    });
  });

  describe('JWT_SECRET', () => {
    it.each([
      ['31 bytes', 'x'.repeat(31)],
      ['one character', 's'],
      ['"secret"', 'secret'],
    ])('a secret of %s is rejected, naming JWT_SECRET', (_name, secret) => {
      const problems = problemsOf({ JWT_SECRET: secret });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain('JWT_SECRET');
      // The message does not echo the secret itself.
      if (secret.length > 1) expect(problems[0]).not.toContain(secret);
    });

    it('is measured in bytes: 32 ASCII bytes and 11 three-byte characters are accepted', () => {
      expect(loadConfig({ JWT_SECRET: 'x'.repeat(32) }).jwtSecret).toBe('x'.repeat(32));
      expect(loadConfig({ JWT_SECRET: '€'.repeat(11) }).jwtSecret).toBe('€'.repeat(11));
    });

    it('a short secret is rejected even when JWKS_URL is also set', () => {
      const problems = problemsOf({ JWT_SECRET: 'short', JWKS_URL: 'https://auth.example.com/api/auth/jwks' });
      expect(problems.join('\n')).toContain('JWT_SECRET');
    });
  });

  describe('numbers', () => {
    it.each([
      ['PORT', 'abc'],
      ['PORT', '-1'],
      ['PORT', '65536'],
      ['PORT', '80.5'],
      ['PORT', '8000abc'],
      ['JWT_CLOCK_TOLERANCE', 'abc'],
      ['JWT_CLOCK_TOLERANCE', '-5'],
      ['JWT_CLOCK_TOLERANCE', '301'],
      ['JWT_CLOCK_TOLERANCE', '2.5'],
      ['JWT_CLOCK_TOLERANCE', 'NaN'],
      ['JWT_CLOCK_TOLERANCE', 'Infinity'],
    ])('%s=%s is rejected with the variable name and the value', (name, value) => {
      const problems = problemsOf({ [name]: value });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain(name);
      expect(problems[0]).toContain(value);
    });

    it('numbers in other notations (hex, binary, exponent, trailing .0) are rejected, not reinterpreted', () => {
      for (const [name, value] of [
        ['PORT', '0x1F40'],
        ['PORT', '8e3'],
        ['PORT', '8000.0'],
        ['JWT_CLOCK_TOLERANCE', '3e2'],
        ['JWT_CLOCK_TOLERANCE', '0b101'],
      ]) {
        const problems = problemsOf({ [name]: value });
        expect(problems, `${name}=${value}`).toHaveLength(1);
        expect(problems[0]).toContain(name);
      }
    });

    it('the bounds themselves are accepted', () => {
      expect(loadConfig({ PORT: '0', JWT_CLOCK_TOLERANCE: '0' })).toMatchObject({ port: 0, jwtClockToleranceSeconds: 0 });
      expect(loadConfig({ PORT: '65535', JWT_CLOCK_TOLERANCE: '300' })).toMatchObject({ port: 65535, jwtClockToleranceSeconds: 300 });
    });
  });

  describe('URLs', () => {
    it.each([
      ['DATABASE_URL', 'mysql://root@db/app', { JWT_SECRET: SECRET }],
      ['DATABASE_URL', 'not a url', { JWT_SECRET: SECRET }],
      ['JWKS_URL', 'ftp://auth.example.com/jwks', {}],
      ['JWKS_URL', 'auth.example.com/jwks', {}],
      ['CORS_ORIGINS', 'https://app.example.com/path', {}],
      ['CORS_ORIGINS', 'app.example.com', {}],
    ])('%s=%s is rejected, naming the variable', (name, value, extra) => {
      const problems = problemsOf({ [name]: value, ...extra });
      expect(problems.length).toBeGreaterThan(0);
      expect(problems.join('\n')).toContain(name);
    });
  });

  it('reports every problem at once', () => {
    const problems = problemsOf({ PORT: 'abc', JWT_SECRET: 'short', JWT_CLOCK_TOLERANCE: '-1', DATABASE_URL: 'postgres://db/app' });
    const text = problems.join('\n');
    expect(text).toContain('PORT');
    expect(text).toContain('JWT_SECRET');
    expect(text).toContain('JWT_CLOCK_TOLERANCE');
  });
});

// ---------------------------------------------------------------------------
// Real processes.

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The environment without anything that configures the API, plus `env`. */
function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(base)) {
    if (/^(JWT_|JWKS_URL$|DATABASE_URL$|DATA_DIR$|PORT$|HOST$|CORS_ORIGINS$|LOG_LEVEL$|METRICS$|DB_|MAX_TASKS_PER_USER$)/.test(name)) {
      delete base[name];
    }
  }
  return { ...base, ...env };
}

function run(args: string[], env: Record<string, string>, timeoutMs = 20_000): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(TSX, args, { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

const tempDirs: string[] = [];
async function freshDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'task-api-config-test-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

describe('npm start (src/main.ts)', () => {
  it('with DATABASE_URL and no keys, exits non-zero quickly, naming JWT_SECRET and JWKS_URL', async () => {
    const dataDir = await freshDir();
    const exit = await run(['src/main.ts'], { DATABASE_URL: 'postgres://x@127.0.0.1:1/db', DATA_DIR: dataDir, PORT: '0' });
    const output = `exit ${exit.code}\nstdout: ${exit.stdout}\nstderr: ${exit.stderr}`;
    expect(exit.signal, output).toBeNull();
    expect(exit.code, output).not.toBe(0);
    expect(exit.ms, output).toBeLessThan(15_000);
    expect(exit.stderr, output).toContain('JWT_SECRET');
    expect(exit.stderr, output).toContain('JWKS_URL');
    expect(exit.stdout + exit.stderr).not.toMatch(/listening/i);
    // Refusing to start is not a crash: no stack trace.
    expect(exit.stderr, output).not.toMatch(/\n\s+at /);
    // Fail closed means no development secret was generated either.
    await expect(stat(path.join(dataDir, 'dev-jwt-secret'))).rejects.toThrow();
  });

  it('with a short JWT_SECRET, exits non-zero naming JWT_SECRET', async () => {
    const exit = await run(['src/main.ts'], { DATABASE_URL: 'postgres://x@127.0.0.1:1/db', JWT_SECRET: 'too-short', PORT: '0' });
    expect(exit.code, exit.stderr).not.toBe(0);
    expect(exit.stderr).toContain('JWT_SECRET');
    expect(exit.stderr).not.toContain('too-short');
  });

  it('with a bad PORT, exits non-zero naming PORT', async () => {
    const exit = await run(['src/main.ts'], { DATABASE_URL: 'postgres://x@127.0.0.1:1/db', JWT_SECRET: SECRET, PORT: 'eighty' });
    expect(exit.code, exit.stderr).not.toBe(0);
    expect(exit.stderr).toContain('PORT');
  });
});

describe('npm run token (scripts/token.ts)', () => {
  it('prints a JWT for the user, signed with the secret it keeps in DATA_DIR, and reuses that secret', async () => {
    const dataDir = await freshDir();
    const first = await run(['scripts/token.ts', 'alice'], { DATA_DIR: dataDir });
    expect(first.code).toBe(0);
    const token = first.stdout.trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(decodeProtectedHeader(token).alg).toBe('HS256');
    const payload = decodeJwt(token);
    expect(payload.sub).toBe('alice');
    expect(payload.exp! - payload.iat!).toBe(24 * 3600);

    const secretFile = path.join(dataDir, 'dev-jwt-secret');
    const secret = (await readFile(secretFile, 'utf8')).trim();
    expect(Buffer.byteLength(secret)).toBeGreaterThanOrEqual(32);
    expect((await stat(secretFile)).mode & 0o077).toBe(0);
    await expect(jwtVerify(token, new TextEncoder().encode(secret), { algorithms: ['HS256'] })).resolves.toBeTruthy();

    const second = await run(['scripts/token.ts', 'alice'], { DATA_DIR: dataDir });
    expect(second.code).toBe(0);
    const again = second.stdout.trim();
    expect((await readFile(secretFile, 'utf8')).trim()).toBe(secret);
    const { payload: verified } = await jwtVerify(again, new TextEncoder().encode(secret), { algorithms: ['HS256'] });
    expect(verified.sub).toBe('alice');

    // And the gateway's own verifier, configured with that secret as the server would be, accepts both.
    const verify = createTokenVerifier({ secret, clockToleranceSeconds: 5 });
    expect((await verify(token)).sub).toBe('alice');
    expect((await verify(again)).sub).toBe('alice');
  });

  it('a different DATA_DIR gets a different secret', async () => {
    const [a, b] = [await freshDir(), await freshDir()];
    const tokenA = (await run(['scripts/token.ts', 'alice'], { DATA_DIR: a })).stdout.trim();
    await run(['scripts/token.ts', 'alice'], { DATA_DIR: b });
    const secretB = (await readFile(path.join(b, 'dev-jwt-secret'), 'utf8')).trim();
    await expect(jwtVerify(tokenA, new TextEncoder().encode(secretB))).rejects.toThrow();
  });

  it('with JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE set, signs with them (and writes no dev secret)', async () => {
    const dataDir = await freshDir();
    const exit = await run(['scripts/token.ts', 'bob'], {
      DATA_DIR: dataDir,
      JWT_SECRET: SECRET,
      JWT_ISSUER: 'https://auth.example.com',
      JWT_AUDIENCE: 'https://api.example.com',
      // Ignored by the token script: it never connects anywhere.
      DATABASE_URL: 'postgres://x@127.0.0.1:1/db',
    });
    expect(exit.code).toBe(0);
    const verify = createTokenVerifier({
      secret: SECRET,
      issuer: 'https://auth.example.com',
      audience: ['https://api.example.com'],
      clockToleranceSeconds: 5,
    });
    expect((await verify(exit.stdout.trim())).sub).toBe('bob');
    await expect(stat(path.join(dataDir, 'dev-jwt-secret'))).rejects.toThrow();
  });

  it('--expires sets the lifetime, wherever it appears', async () => {
    const dataDir = await freshDir();
    for (const args of [
      ['alice', '--expires', '1h'],
      ['--expires', '1h', 'alice'],
    ]) {
      const exit = await run(['scripts/token.ts', ...args], { DATA_DIR: dataDir });
      expect(exit.code).toBe(0);
      const payload = decodeJwt(exit.stdout.trim());
      expect(payload.sub, args.join(' ')).toBe('alice');
      expect(payload.exp! - payload.iat!).toBe(3600);
    }
  });

  it('without a user id, exits 2 with usage', async () => {
    const exit = await run(['scripts/token.ts'], { DATA_DIR: await freshDir() });
    expect(exit.code).toBe(2);
    expect(exit.stderr).toMatch(/usage/i);
    expect(exit.stdout.trim()).toBe('');
  });
});

describe('HTTP timeouts', () => {
  it('have documented defaults: 30 s for a request, 10 s for its headers, 72 s of keep-alive', () => {
    expect(loadConfig({}).http).toEqual({ requestTimeoutMs: 30_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 72_000 });
  });

  it('are read from HTTP_REQUEST_TIMEOUT_MS, HTTP_HEADERS_TIMEOUT_MS and HTTP_KEEP_ALIVE_TIMEOUT_MS', () => {
    const config = loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '5000', HTTP_HEADERS_TIMEOUT_MS: '2000', HTTP_KEEP_ALIVE_TIMEOUT_MS: '65000' });
    expect(config.http).toEqual({ requestTimeoutMs: 5_000, headersTimeoutMs: 2_000, keepAliveTimeoutMs: 65_000 });
  });

  it.each([
    ['HTTP_REQUEST_TIMEOUT_MS', '0'],
    ['HTTP_REQUEST_TIMEOUT_MS', '30s'],
    ['HTTP_HEADERS_TIMEOUT_MS', '-1'],
    ['HTTP_KEEP_ALIVE_TIMEOUT_MS', 'forever'],
  ])('%s=%s is rejected, naming the variable', (name, value) => {
    const problems = problemsOf({ [name]: value });
    expect(problems.join('\n')).toContain(name);
  });

  it('a header timeout longer than the request timeout is rejected (the headers are part of the request)', () => {
    const problems = problemsOf({ HTTP_REQUEST_TIMEOUT_MS: '1000', HTTP_HEADERS_TIMEOUT_MS: '2000' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('HTTP_HEADERS_TIMEOUT_MS');
    expect(problems[0]).toContain('HTTP_REQUEST_TIMEOUT_MS');
  });
});
