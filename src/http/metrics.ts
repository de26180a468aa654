// GET /metrics in Prometheus' text exposition format (METRICS=true only):
// request counts and a latency histogram per method, route pattern and
// status, and the connection pool's gauges. Hand-written rather than
// prom-client: three metric families do not need a dependency.
//
// Registered only when enabled: with METRICS unset the app has no hook and no
// route for it, so it costs nothing per request and /metrics is a 404.
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';

/** Upper bounds (seconds) of the latency histogram's buckets. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The route label of requests that matched no route (404s for unknown paths). */
export const UNMATCHED_ROUTE = 'unmatched';

interface Series {
  labels: string;
  count: number;
  sumSeconds: number;
  /** Per-bucket (non-cumulative) counts; the last slot is +Inf. */
  buckets: number[];
}

/** Label values escaped as the text format requires: \, " and newline. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

export class RequestMetrics {
  private readonly series = new Map<string, Series>();

  observe(method: string, route: string, status: number, seconds: number): void {
    // One map lookup per request; the label string is built once per series.
    const key = `${method} ${status} ${route}`;
    let series = this.series.get(key);
    if (series === undefined) {
      series = {
        labels: `method="${escapeLabel(method)}",route="${escapeLabel(route)}",status="${status}"`,
        count: 0,
        sumSeconds: 0,
        buckets: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0),
      };
      this.series.set(key, series);
    }
    series.count += 1;
    series.sumSeconds += seconds;
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]) i++;
    series.buckets[i] += 1;
  }

  render(pool?: Pick<pg.Pool, 'totalCount' | 'idleCount' | 'waitingCount'>): string {
    const lines: string[] = [];
    const all = [...this.series.values()].sort((a, b) => (a.labels < b.labels ? -1 : a.labels > b.labels ? 1 : 0));

    lines.push('# HELP http_requests_total HTTP requests answered, by method, route pattern and status.');
    lines.push('# TYPE http_requests_total counter');
    for (const series of all) lines.push(`http_requests_total{${series.labels}} ${series.count}`);

    lines.push('# HELP http_request_duration_seconds Time from receiving a request to sending its response.');
    lines.push('# TYPE http_request_duration_seconds histogram');
    for (const series of all) {
      let cumulative = 0;
      for (let i = 0; i <= LATENCY_BUCKETS.length; i++) {
        cumulative += series.buckets[i];
        const le = i < LATENCY_BUCKETS.length ? formatNumber(LATENCY_BUCKETS[i]) : '+Inf';
        lines.push(`http_request_duration_seconds_bucket{${series.labels},le="${le}"} ${cumulative}`);
      }
      lines.push(`http_request_duration_seconds_sum{${series.labels}} ${formatNumber(series.sumSeconds)}`);
      lines.push(`http_request_duration_seconds_count{${series.labels}} ${series.count}`);
    }

    if (pool) {
      const gauge = (name: string, help: string, value: number) => {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${formatNumber(value)}`);
      };
      gauge('db_pool_connections', 'Connections the pool holds, busy or idle (pg.Pool totalCount).', pool.totalCount);
      gauge('db_pool_idle_connections', 'Connections open and not checked out (pg.Pool idleCount).', pool.idleCount);
      gauge('db_pool_waiting_requests', 'Requests queued for a connection (pg.Pool waitingCount).', pool.waitingCount);
    }
    return `${lines.join('\n')}\n`;
  }
}

export interface MetricsOptions {
  pool: pg.Pool;
}

/**
 * Adds the onResponse hook that records every request and the GET /metrics
 * route. Call on the root instance, before the routes it should observe are
 * registered.
 */
export function registerMetrics(app: FastifyInstance, options: MetricsOptions): RequestMetrics {
  const metrics = new RequestMetrics();
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern (/api/tasks/:id), never the raw URL, so ids do not
    // turn into one series each.
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    metrics.observe(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
    reply.type(METRICS_CONTENT_TYPE).send(metrics.render(options.pool)),
  );
  return metrics;
}
