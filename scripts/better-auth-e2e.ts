// npm run e2e:better-auth: the gateway against a Better Auth-shaped identity
// provider, end to end over HTTP.
//
// Starts a local stand-in for Better Auth's JWT plugin (EdDSA/Ed25519 JWKS at
// /api/auth/jwks, tokens from /api/auth/token and the set-auth-jwt header;
// scripts/support/better-auth-stand-in.ts), then the real gateway as a process
// on an embedded PostgreSQL in a temporary DATA_DIR, configured the way
// docs/better-auth.md says (JWKS_URL, JWT_ISSUER, JWT_AUDIENCE), and drives it
// as two users would. Prints PASS or FAIL per step; exits 1 if any failed.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { createStandInKey, startBetterAuthStandIn, type BetterAuthStandIn } from './support/better-auth-stand-in.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const START_TIMEOUT_MS = 40_000;
const OVERALL_TIMEOUT_MS = 55_000;
/** The gateway's cooldown between JWKS refetches caused by an unknown kid (token-verifier.ts). */
const JWKS_COOLDOWN_MS = 5_000;

// ---------------------------------------------------------------------------
// Reporting

let failures = 0;
let passes = 0;

class StepFailed extends Error {}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new StepFailed(message);
}

function equal<T>(actual: T, expected: T, what: string) {
  check(Object.is(actual, expected), `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

async function step(name: string, fn: () => Promise<string | void>): Promise<boolean> {
  const started = Date.now();
  try {
    const note = await fn();
    passes++;
    console.log(`PASS  ${name}${note ? ` (${note})` : ''} [${Date.now() - started} ms]`);
    return true;
  } catch (error) {
    failures++;
    const reason = error instanceof StepFailed ? error.message : (error as Error).stack ?? String(error);
    console.log(`FAIL  ${name}: ${reason}`);
    return false;
  }
}

// ---------------------------------------------------------------------------
// The gateway process

interface Gateway {
  url: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

async function startGateway(env: Record<string, string>): Promise<Gateway> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    // Only what the gateway needs: nothing from the caller's API configuration leaks in.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not start in ${START_TIMEOUT_MS} ms:\n${output}`)), START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited (${code}) during start-up:\n${output}`));
    });
  });
  return { url, child, output: () => output, exited };
}

// ---------------------------------------------------------------------------
// HTTP as a frontend would speak it

interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

async function call(baseUrl: string, method: string, urlPath: string, options: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  const response = await fetch(`${baseUrl}${urlPath}`, {
    method,
    headers: {
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  let idp: BetterAuthStandIn | undefined;
  let gateway: Gateway | undefined;
  let dataDir: string | undefined;

  const cleanUp = async () => {
    if (gateway && gateway.child.exitCode === null && gateway.child.signalCode === null) {
      gateway.child.kill('SIGTERM');
      const stopped = await Promise.race([gateway.exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!stopped) gateway.child.kill('SIGKILL');
    }
    await idp?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  };
  const watchdog = setTimeout(() => {
    console.log(`FAIL  the whole run: still going after ${OVERALL_TIMEOUT_MS} ms`);
    cleanUp().finally(() => process.exit(1));
  }, OVERALL_TIMEOUT_MS);
  watchdog.unref();

  try {
    idp = await startBetterAuthStandIn();
    const auth = idp;
    dataDir = await mkdtemp(path.join(tmpdir(), 'task-api-better-auth-e2e-'));
    const env = { DATA_DIR: dataDir, JWKS_URL: auth.jwksUrl, JWT_ISSUER: auth.baseUrl, JWT_AUDIENCE: auth.baseUrl };

    const started = await step('the gateway starts on an embedded database with JWKS_URL, JWT_ISSUER and JWT_AUDIENCE from Better Auth', async () => {
      gateway = await startGateway(env);
      const keysLine = gateway.output().split('\n').find((line) => line.includes('token keys:')) ?? '';
      check(keysLine.includes(`JWKS ${auth.jwksUrl}`), `the banner does not name the JWKS: ${keysLine.trim()}`);
      check(!keysLine.includes('development secret'), 'a development secret was generated although JWKS_URL is set');
      return gateway.url;
    });
    if (!started) return;
    const api = gateway!.url;

    const alice = auth.signIn('Alice');
    const bob = auth.signIn('Bob');
    let aliceToken = '';
    let bobToken = '';

    await step('user A gets a JWT from /api/auth/token (authClient.token()) shaped as Better Auth signs it', async () => {
      const response = await fetch(`${auth.baseUrl}/api/auth/token`, { headers: { cookie: alice.cookie } });
      equal(response.status, 200, 'status of /api/auth/token');
      aliceToken = ((await response.json()) as { token: string }).token;
      const header = decodeProtectedHeader(aliceToken);
      const claims = decodeJwt(aliceToken);
      equal(header.alg, 'EdDSA', 'alg');
      check(auth.keys.some((key) => key.kid === header.kid), 'kid is not in the published JWKS');
      equal(claims.sub, alice.user.id, 'sub');
      equal(claims.id, alice.user.id, 'id');
      equal(claims.email, alice.user.email, 'email');
      equal(claims.iss, auth.baseUrl, 'iss');
      equal(claims.aud, auth.baseUrl, 'aud');
      check(typeof claims.iat === 'number' && claims.exp === claims.iat + 15 * 60, 'exp is not iat + 15 min');
    });

    await step('user B gets a JWT from the set-auth-jwt header of /api/auth/get-session', async () => {
      const response = await fetch(`${auth.baseUrl}/api/auth/get-session`, { headers: { cookie: bob.cookie } });
      equal(response.status, 200, 'status of /api/auth/get-session');
      bobToken = response.headers.get('set-auth-jwt') ?? '';
      check(bobToken, 'no set-auth-jwt header');
      equal(decodeJwt(bobToken).sub, bob.user.id, 'sub');
    });

    await step('without a token the gateway answers 401 with WWW-Authenticate: Bearer', async () => {
      const answer = await call(api, 'GET', '/api/tasks');
      equal(answer.status, 401, 'status');
      equal(answer.headers.get('www-authenticate'), 'Bearer', 'WWW-Authenticate');
      equal(answer.body?.type, '/problems/unauthorized', 'problem type');
    });

    let firstId = '';
    let secondId = '';
    await step('user A creates a task (POST /api/tasks): 201, owned by the token subject', async () => {
      const answer = await call(api, 'POST', '/api/tasks', { token: aliceToken, body: { title: 'Buy milk', description: '2 litres' } });
      equal(answer.status, 201, 'status');
      equal(answer.body.user_id, alice.user.id, 'user_id');
      equal(answer.body.completed, false, 'completed');
      equal(answer.headers.get('location'), `/api/tasks/${answer.body.id}`, 'Location');
      firstId = answer.body.id;
    });

    await step('user A creates a task under their own path (POST /api/{user_id}/tasks)', async () => {
      const answer = await call(api, 'POST', `/api/${alice.user.id}/tasks`, { token: aliceToken, body: { title: 'Call the plumber' } });
      equal(answer.status, 201, 'status');
      equal(answer.body.user_id, alice.user.id, 'user_id');
      secondId = answer.body.id;
    });

    await step('user A lists both tasks, newest first', async () => {
      const answer = await call(api, 'GET', '/api/tasks', { token: aliceToken });
      equal(answer.status, 200, 'status');
      equal(JSON.stringify(answer.body.map((task: { id: string }) => task.id)), JSON.stringify([secondId, firstId]), 'ids');
    });

    await step('user A toggles a task (PATCH /api/tasks/{id}/complete, no body)', async () => {
      const answer = await call(api, 'PATCH', `/api/tasks/${firstId}/complete`, { token: aliceToken });
      equal(answer.status, 200, 'status');
      equal(answer.body.completed, true, 'completed');
      const back = await call(api, 'PATCH', `/api/${alice.user.id}/tasks/${firstId}/complete`, { token: aliceToken, body: { completed: false } });
      equal(back.status, 200, 'status of the explicit set');
      equal(back.body.completed, false, 'completed after {"completed": false}');
    });

    await step("user B sees none of user A's tasks and cannot read, change or delete them", async () => {
      const list = await call(api, 'GET', '/api/tasks', { token: bobToken });
      equal(list.status, 200, 'status of B listing');
      equal(JSON.stringify(list.body), '[]', "B's list");
      const attempts: [string, string, unknown?][] = [
        ['GET', `/api/tasks/${firstId}`],
        ['PATCH', `/api/tasks/${firstId}`, { title: 'mine now' }],
        ['PATCH', `/api/tasks/${firstId}/complete`],
        ['PUT', `/api/tasks/${firstId}`, { title: 'mine now', description: null, completed: true }],
        ['DELETE', `/api/tasks/${firstId}`],
        ['GET', `/api/${alice.user.id}/tasks`],
      ];
      for (const [method, urlPath, body] of attempts) {
        const answer = await call(api, method, urlPath, { token: bobToken, body });
        equal(answer.status, 403, `${method} ${urlPath} as B`);
        equal(answer.body?.type, '/problems/forbidden', `problem type of ${method} ${urlPath}`);
      }
      const unchanged = await call(api, 'GET', `/api/tasks/${firstId}`, { token: aliceToken });
      equal(unchanged.body.title, 'Buy milk', "A's task title afterwards");
      equal(unchanged.body.completed, false, "A's task completed afterwards");
    });

    await step('user A deletes a task: 204, then 404 and gone from the list', async () => {
      const answer = await call(api, 'DELETE', `/api/tasks/${secondId}`, { token: aliceToken });
      equal(answer.status, 204, 'status');
      equal((await call(api, 'GET', `/api/tasks/${secondId}`, { token: aliceToken })).status, 404, 'status of a GET afterwards');
      const list = await call(api, 'GET', '/api/tasks', { token: aliceToken });
      equal(JSON.stringify(list.body.map((task: { id: string }) => task.id)), JSON.stringify([firstId]), 'ids left');
    });

    await step('tokens Better Auth did not issue are refused with 401 (unpublished key, wrong audience or issuer, expired)', async () => {
      const stranger = await createStandInKey();
      const unpublished = await auth.sign(alice.user, { key: stranger });
      // A kid the gateway has not seen, while a JWKS refetch is not yet
      // allowed, may be a key rotated in a moment ago: 503, retry later.
      const early = await call(api, 'GET', '/api/tasks', { token: unpublished });
      if (early.status === 503) {
        check(/^\d+$/.test(early.headers.get('retry-after') ?? ''), 'no Retry-After on the 503 for an unseen kid');
        await sleep(Math.max(0, auth.jwksFetches.at(-1)! + JWKS_COOLDOWN_MS + 300 - Date.now()));
      }
      const cases: [string, string][] = [
        // After a refetch that still lacks the key: 401.
        ['unpublished key', unpublished],
        ['wrong audience', await auth.sign(alice.user, { claims: { aud: 'https://elsewhere.example.com' } })],
        ['wrong issuer', await auth.sign(alice.user, { claims: { iss: 'https://elsewhere.example.com' } })],
        ['expired', await auth.sign(alice.user, { claims: { iat: Math.floor(Date.now() / 1000) - 3600, exp: Math.floor(Date.now() / 1000) - 600 } })],
      ];
      for (const [name, token] of cases) {
        const answer = await call(api, 'GET', '/api/tasks', { token });
        equal(answer.status, 401, `status for a token with ${name}`);
        check(answer.headers.get('www-authenticate')?.includes('invalid_token'), `no invalid_token for ${name}`);
      }
    });

    await step('a rotated signing key is picked up without a restart; tokens of the old key still work', async () => {
      const fetchesBefore = auth.jwksFetches.length;
      check(fetchesBefore >= 1, 'the gateway never fetched the JWKS');
      const newKey = await auth.rotate();
      const rotatedToken = await auth.sign(alice.user);
      equal(decodeProtectedHeader(rotatedToken).kid, newKey.kid, 'kid of the new token');
      // An unknown kid makes the gateway refetch the JWKS, at most once per
      // cooldown: wait until the last fetch is older than that.
      const wait = Math.max(0, auth.jwksFetches.at(-1)! + JWKS_COOLDOWN_MS + 300 - Date.now());
      await sleep(wait);
      const answer = await call(api, 'GET', '/api/tasks', { token: rotatedToken });
      equal(answer.status, 200, 'status with a token of the new key');
      equal(answer.body.length, 1, 'tasks seen with the new key');
      equal(auth.jwksFetches.length, fetchesBefore + 1, 'JWKS fetches caused by the new kid');
      const old = await call(api, 'GET', '/api/tasks', { token: aliceToken });
      equal(old.status, 200, 'status with a token of the old key');
      return `waited ${(wait / 1000).toFixed(1)} s for the gateway's JWKS refetch cooldown`;
    });

    await step('the gateway stops cleanly on SIGTERM', async () => {
      gateway!.child.kill('SIGTERM');
      const code = await Promise.race([gateway!.exited, sleep(15_000).then(() => 'timeout' as const)]);
      equal(code, 0, 'exit code');
    });
  } finally {
    clearTimeout(watchdog);
    await cleanUp();
  }
}

try {
  await main();
} catch (error) {
  failures++;
  console.log(`FAIL  the run itself: ${(error as Error).stack ?? error}`);
}
console.log(`\n${passes} passed, ${failures} failed`);
process.exit(failures > 0 || passes === 0 ? 1 : 0);
