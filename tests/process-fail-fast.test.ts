// While the database is known to be down, requests are refused at once
// ("not attempted", Retry-After) instead of each waiting out the connection
// retry budget; one background probe reconnects, and the first success
// reopens. A short outage (a Neon compute waking) is still waited out by the
// request that meets it. A real gateway process behind a breakable proxy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUser, tokenFor } from './support/http.js';
import { startProxiedServer } from './support/proxied-server.js';
import type { ServerProcess } from './support/server-process.js';
import type { TcpProxy } from './support/tcp-proxy.js';

let proxy: TcpProxy;
let server: ServerProcess;
let token: string;

beforeAll(async () => {
  ({ proxy, server } = await startProxiedServer({
    DB_CONNECT_TIMEOUT_MS: '1000',
    DB_CONNECT_RETRY_MS: '2000',
    DB_STATEMENT_TIMEOUT_MS: '2000',
  }));
  token = await tokenFor(newUser('fail-fast'));
});

afterAll(async () => {
  await server?.kill('SIGTERM');
  await proxy?.close();
});

async function create(title: string) {
  const response = await fetch(`${server.url}/api/tasks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ title }),
    signal: AbortSignal.timeout(15_000),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

describe('fail fast while the database is down', () => {
  it('waits out a short outage on the request that meets it (a wake), then succeeds', async () => {
    expect((await create('warm')).status).toBe(201);
    proxy.down();
    const during = create('during a wake');
    await new Promise((r) => setTimeout(r, 600));
    proxy.up();
    expect((await during).status).toBe(201);
  });

  it('after one request failed for the whole budget, refuses without connecting, then reopens on recovery', async () => {
    proxy.down();
    // Let the gateway see its pooled connections closed: a write that meets a
    // connection dying under it is "outcome unknown", which is not this test.
    await new Promise((r) => setTimeout(r, 500));
    const attemptsBefore = proxy.accepted();
    const first = await create('first in the outage');
    expect(first.status).toBe(503);
    expect(first.body.type).toBe('/problems/unavailable');
    // The first request kept retrying for its budget.
    expect(proxy.accepted() - attemptsBefore).toBeGreaterThan(2);

    const attemptsAfterFirst = proxy.accepted();
    const refused = [];
    for (let i = 0; i < 20; i++) refused.push(await create(`refused ${i}`));
    for (const response of refused) {
      expect(response.status).toBe(503);
      expect(response.headers.get('content-type')).toContain('application/problem+json');
      expect(response.body.type).toBe('/problems/unavailable');
      expect(response.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
      expect(response.headers.get('x-request-id')).toBeTruthy();
    }
    // Twenty refusals, and only the background probe tried to connect meanwhile.
    expect(proxy.accepted() - attemptsAfterFirst).toBeLessThanOrEqual(2);

    proxy.up();
    let recovered = false;
    for (let i = 0; i < 100 && !recovered; i++) {
      recovered = (await create(`after ${i}`)).status === 201;
      if (!recovered) await new Promise((r) => setTimeout(r, 100));
    }
    expect(recovered).toBe(true);
    expect(server.child.exitCode).toBeNull();
  });
});
