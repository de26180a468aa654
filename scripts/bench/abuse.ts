// The abuse scenario of `npm run bench -- --scenario abuse`: one user holds
// the largest list the byte quota allows, made of the characters that grow
// most in JSON (U+0001: one byte stored, six sent), and N clients download it
// in a loop, while other users' clients do ordinary gets and lists (wrk,
// op "reads"). Measured against the same reads without the abuser: the
// gateway's peak RSS, the abuser's throughput, the others' p50/p99.
import http from 'node:http';
import pg from 'pg';
import { SignJWT } from 'jose';
import type { ServerProcess } from './gateway-process.js';
import { runWrk, type Measurement } from './tools.js';

/** The gateway's default MAX_BYTES_PER_USER. */
const MAX_BYTES_PER_USER = 16 * 1024 * 1024;
const DESCRIPTION_CHARS = 10_000;
const ABUSER = 'bench-abuser';

/** Gives the abuser as many maximal tasks as the quota holds; returns how many. */
export async function seedAbuser(ownerUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    const perTask = DESCRIPTION_CHARS + 'abuse 0000'.length;
    const count = Math.floor(MAX_BYTES_PER_USER / perTask);
    await client.query(
      `insert into api.tasks (user_id, title, description)
       select $1, 'abuse ' || lpad(n::text, 4, '0'), repeat(chr(1), $2) from generate_series(1, $3) n`,
      [ABUSER, DESCRIPTION_CHARS, count],
    );
    await client.query('vacuum analyze api.tasks');
    return count;
  } finally {
    await client.end();
  }
}

interface AbuseLoad {
  stop(): Promise<{ lists: number; bytes: number; failures: number; seconds: number }>;
}

/** `clients` loops, each downloading the abuser's whole list and discarding it, again and again. */
function startAbusers(url: string, token: string, clients: number): AbuseLoad {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  let running = true;
  let lists = 0;
  let bytes = 0;
  let failures = 0;
  const started = Date.now();
  const once = () =>
    new Promise<void>((resolve) => {
      const request = http.get(`${url}/api/tasks`, { agent, headers: { authorization: `Bearer ${token}` } }, (response) => {
        response.on('data', (chunk: Buffer) => (bytes += chunk.length));
        response.on('end', () => {
          if (response.statusCode === 200 && response.complete) lists += 1;
          else failures += 1;
          resolve();
        });
        response.on('error', () => {
          failures += 1;
          resolve();
        });
      });
      request.on('error', () => {
        failures += 1;
        resolve();
      });
    });
  const loops = Array.from({ length: clients }, async () => {
    while (running) await once();
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { lists, bytes, failures, seconds: (Date.now() - started) / 1000 };
    },
  };
}

export async function runAbuseScenario(options: {
  gateway: ServerProcess;
  jwtSecret: string;
  dataFile: string;
  connections: number;
  durationSeconds: number;
  abusers: number;
  abuserTasks: number;
}) {
  const { gateway } = options;
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(ABUSER).setIssuedAt().setExpirationTime('2h')
    .sign(new TextEncoder().encode(options.jwtSecret));
  const reads = () =>
    runWrk({ url: gateway.url, op: 'reads', dataFile: options.dataFile, connections: options.connections, durationSeconds: options.durationSeconds });

  process.stderr.write('abuse scenario: quiet run (others only)…\n');
  await gateway.resetPeakRss();
  const quiet = await reads();
  const quietRssMb = await gateway.peakRssMb();

  process.stderr.write(`abuse scenario: ${options.abusers} clients looping on a list of ${options.abuserTasks} tasks, others as before…\n`);
  await gateway.resetPeakRss();
  const abuse = startAbusers(gateway.url, token, options.abusers);
  let loud: Measurement;
  let abuser: Awaited<ReturnType<AbuseLoad['stop']>>;
  try {
    loud = await reads();
  } finally {
    abuser = await abuse.stop();
  }
  const loudRssMb = await gateway.peakRssMb();

  const row = (name: string, m: Measurement, rssMb: number | undefined) => ({
    run: name,
    'others req/s': Math.round(m.rate),
    'others p50 ms': m.p50Ms.toFixed(2),
    'others p99 ms': m.p99Ms.toFixed(2),
    'others errors': m.errors,
    'p99 vs quiet': `${(m.p99Ms / quiet.p99Ms).toFixed(1)}×`,
    'peak RSS MB': rssMb ?? '',
  });
  return {
    rows: [row('quiet (no abuser)', quiet, quietRssMb), row(`${options.abusers} abusive clients`, loud, loudRssMb)],
    abuser: {
      lists: abuser.lists,
      failures: abuser.failures,
      'lists/s': (abuser.lists / abuser.seconds).toFixed(2),
      'MB/s': (abuser.bytes / abuser.seconds / 1024 / 1024).toFixed(1),
      'MB per list': abuser.lists ? (abuser.bytes / Math.max(1, abuser.lists + abuser.failures) / 1024 / 1024).toFixed(1) : '',
    },
    quiet,
    loud,
  };
}
