// METRICS=true serves Prometheus text at GET /metrics: request counts and a
// latency histogram per method, route pattern and status, and the pool's
// gauges. Off (the default) there is no hook and no route: /metrics is 404.
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { createTokenVerifier } from '../src/auth/token-verifier.js';
import { loadConfig } from '../src/config.js';
import { createPool } from '../src/db/pool.js';
import { createRequestRunner } from '../src/db/request-transaction.js';
import { LATENCY_BUCKETS, RequestMetrics } from '../src/http/metrics.js';
import { bearer, newUser, TEST_JWT_SECRET, tokenFor } from './support/http.js';
import { startServerProcess, type ServerProcess } from './support/server-process.js';

interface Instance {
  app: FastifyInstance;
  pool: pg.Pool;
  close(): Promise<void>;
}

/** The real app on the test database, like createTestApp but with the metrics option. */
async function instance(metrics: boolean | undefined): Promise<Instance> {
  const pool = createPool(inject('appUrl'), { max: 4, connectTimeoutMs: 5_000, connectRetryMs: 1_000, statementTimeoutMs: 5_000 });
  const app = await buildApp({
    pool,
    runAsUser: createRequestRunner({
      pool,
      preparedStatements: process.env.TEST_PREPARED_STATEMENTS !== 'false',
      statementTimeoutMs: 5_000,
      connectRetryMs: 1_000,
      maxTasksPerUser: 10_000,
    }),
    verify: createTokenVerifier({ secret: TEST_JWT_SECRET, clockToleranceSeconds: 5 }),
    corsOrigins: [],
    logLevel: 'silent',
    ...(metrics === undefined ? {} : { metrics }),
  });
  await app.ready();
  return {
    app,
    pool,
    async close() {
      await app.close();
      await pool.end();
    },
  };
}

/** Samples of the exposition, keyed by `name{labels}` exactly as printed. */
function samples(text: string): Map<string, number> {
  const result = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    result.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return result;
}

describe('METRICS on', () => {
  let t: Instance;
  let exposition: string;
  let values: Map<string, number>;
  let taskId: string;

  beforeAll(async () => {
    t = await instance(true);
    const user = newUser('metrics');
    const headers = bearer(await tokenFor(user));
    const created = await t.app.inject({ method: 'POST', url: '/api/tasks', headers, payload: { title: 'counted' } });
    expect(created.statusCode).toBe(201);
    taskId = created.json().id;
    for (let i = 0; i < 3; i++) {
      expect((await t.app.inject({ method: 'GET', url: '/api/tasks', headers })).statusCode).toBe(200);
    }
    // Two different ids: one route pattern, one series.
    expect((await t.app.inject({ method: 'GET', url: `/api/tasks/${taskId}`, headers })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: `/api/${user}/tasks/${taskId}`, headers })).statusCode).toBe(200);
    const missing = '00000000-0000-4000-8000-000000000000';
    expect((await t.app.inject({ method: 'GET', url: `/api/tasks/${missing}`, headers })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/api/tasks' })).statusCode).toBe(401);
    expect((await t.app.inject({ method: 'GET', url: `/no/such/path/${taskId}` })).statusCode).toBe(404);

    const response = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    exposition = response.body;
    values = samples(exposition);
  });
  afterAll(() => t.close());

  it('counts requests by method, route pattern and status', () => {
    expect(values.get('http_requests_total{method="POST",route="/api/tasks",status="201"}')).toBe(1);
    expect(values.get('http_requests_total{method="GET",route="/api/tasks",status="200"}')).toBe(3);
    expect(values.get('http_requests_total{method="GET",route="/api/tasks",status="401"}')).toBe(1);
    expect(values.get('http_requests_total{method="GET",route="/api/tasks/:id",status="200"}')).toBe(1);
    expect(values.get('http_requests_total{method="GET",route="/api/tasks/:id",status="404"}')).toBe(1);
    expect(values.get('http_requests_total{method="GET",route="/api/:user_id/tasks/:id",status="200"}')).toBe(1);
    expect(values.get('http_requests_total{method="GET",route="unmatched",status="404"}')).toBe(1);
  });

  it('never puts a raw URL, an id or a user in a label', () => {
    expect(exposition).not.toContain(taskId);
    expect(exposition).not.toContain('metrics-');
    expect(exposition).not.toContain('/no/such/path');
  });

  it('has a latency histogram per series whose buckets are cumulative and end in +Inf = count', () => {
    expect(exposition).toContain('# TYPE http_request_duration_seconds histogram');
    const labels = 'method="GET",route="/api/tasks",status="200"';
    const buckets = [...LATENCY_BUCKETS.map(String), '+Inf'].map(
      (le) => values.get(`http_request_duration_seconds_bucket{${labels},le="${le}"}`)!,
    );
    for (const value of buckets) expect(value).toBeTypeOf('number');
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]).toBeGreaterThanOrEqual(buckets[i - 1]);
    expect(buckets.at(-1)).toBe(3);
    expect(values.get(`http_request_duration_seconds_count{${labels}}`)).toBe(3);
    const sum = values.get(`http_request_duration_seconds_sum{${labels}}`)!;
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(30);
  });

  it('exposes the pool gauges (total, idle, waiting)', () => {
    expect(exposition).toContain('# TYPE db_pool_connections gauge');
    expect(exposition).toContain('# TYPE db_pool_idle_connections gauge');
    expect(exposition).toContain('# TYPE db_pool_waiting_requests gauge');
    expect(values.get('db_pool_connections')).toBeGreaterThanOrEqual(1);
    expect(values.get('db_pool_connections')).toBe(t.pool.totalCount);
    expect(values.get('db_pool_idle_connections')).toBe(t.pool.idleCount);
    expect(values.get('db_pool_waiting_requests')).toBe(0);
  });

  it('counts the scrape itself on the next scrape, and keeps counting', async () => {
    const next = samples((await t.app.inject({ method: 'GET', url: '/metrics' })).body);
    expect(next.get('http_requests_total{method="GET",route="/metrics",status="200"}')).toBe(1);
    expect(next.get('http_requests_total{method="GET",route="/api/tasks",status="200"}')).toBe(3);
  });

  it('is not part of the OpenAPI document', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(Object.keys(doc.paths)).not.toContain('/metrics');
  });
});

describe('METRICS off', () => {
  it.each([
    ['the default (option absent)', undefined],
    ['metrics: false', false],
  ])('%s: /metrics is a 404 problem and no route or hook is registered', async (_name, metrics) => {
    const t = await instance(metrics);
    try {
      const response = await t.app.inject({ method: 'GET', url: '/metrics' });
      expect(response.statusCode).toBe(404);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(t.app.hasRoute({ method: 'GET', url: '/metrics' })).toBe(false);
      expect(t.app.printRoutes()).not.toContain('metrics');
    } finally {
      await t.close();
    }
  });
});

describe('the METRICS variable', () => {
  it('defaults to off and reads the usual boolean spellings', () => {
    expect(loadConfig({}).metrics).toBe(false);
    expect(loadConfig({ METRICS: 'true' }).metrics).toBe(true);
    expect(loadConfig({ METRICS: '1' }).metrics).toBe(true);
    expect(loadConfig({ METRICS: 'false' }).metrics).toBe(false);
    expect(() => loadConfig({ METRICS: 'maybe' })).toThrow(/METRICS/);
  });

  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.kill('SIGKILL');
  });

  it('reaches the running server: the banner says so and /metrics answers', async () => {
    server = await startServerProcess({ DATABASE_URL: inject('appUrl'), METRICS: 'true' });
    expect(server.output()).toContain(`metrics: on, Prometheus text at ${server.url}/metrics`);
    const response = await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(10_000) });
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('# TYPE db_pool_connections gauge');
  }, 60_000);

  it('a server started without it says metrics are off', async () => {
    const off = await startServerProcess({ DATABASE_URL: inject('appUrl') });
    try {
      expect(off.output()).toContain('metrics: off');
      const response = await fetch(`${off.url}/metrics`, { signal: AbortSignal.timeout(10_000) });
      expect(response.status).toBe(404);
    } finally {
      await off.kill('SIGKILL');
    }
  }, 60_000);
});

describe('the exposition format', () => {
  it('escapes label values and renders an empty registry with the gauges only', () => {
    const metrics = new RequestMetrics();
    expect(metrics.render({ totalCount: 2, idleCount: 1, waitingCount: 0 })).toContain('db_pool_connections 2\n');
    metrics.observe('GET', '/a"b\\c\nd', 200, 0.2);
    const text = metrics.render();
    expect(text).toContain('http_requests_total{method="GET",route="/a\\"b\\\\c\\nd",status="200"} 1');
    expect(text).toContain('le="0.1"} 0');
    expect(text).toContain('le="0.25"} 1');
    expect(text).toContain('le="+Inf"} 1');
  });
});
