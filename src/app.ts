// Builds the Fastify application: error handling, CORS, OpenAPI, health and
// the two task route families. Knows nothing about where the pool comes from.
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import pino from 'pino';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { TokenVerifier } from './auth/token-verifier.js';
import { DEFAULT_HTTP_TIMEOUTS, type HttpTimeouts } from './config.js';
import type { RequestRunner } from './db/request-transaction.js';
import { problemForClientError, sendFrameworkError, writeClientErrorProblem } from './http/framework-errors.js';
import { toProblem } from './http/error-mapping.js';
import { ProblemError, sendProblem } from './http/problem.js';
import { registerMetrics } from './http/metrics.js';
import { DrainState, registerDrain } from './http/drain.js';
import { healthRoutes } from './http/routes/health.js';
import { taskRoutes } from './http/routes/tasks.js';
import { ListCursors } from './http/task-list-query.js';
import { sharedSchemas } from './http/schemas.js';

export interface AppOptions {
  pool: pg.Pool;
  runAsUser: RequestRunner;
  verify: TokenVerifier;
  corsOrigins: string[];
  logLevel?: string;
  /** Pino destination for tests; defaults to stdout. */
  logStream?: NodeJS.WritableStream;
  /** Serve Prometheus metrics at GET /metrics; off: no hook, no route. */
  metrics?: boolean;
  /**
   * The secret list cursors are sealed with (CURSOR_SECRET, else JWT_SECRET):
   * the same on every replica, so a cursor works on all of them. Without one,
   * cursors work only on the process that issued them.
   */
  cursorSecret?: string;
  /** Shutdown phase, set by whoever stops the server (src/server.ts). */
  drain?: DrainState;
  /** How long a client may take to send a request and its headers, and keep an idle connection. */
  timeouts?: HttpTimeouts;
}

export const BODY_LIMIT_BYTES = 64 * 1024;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const timeouts = options.timeouts ?? DEFAULT_HTTP_TIMEOUTS;
  const app: FastifyInstance = Fastify({
    logger: {
      level: options.logLevel ?? 'info',
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], remove: true },
      // The API takes no query parameters; a token pasted into one must not reach the logs.
      serializers: {
        req: (request: { method: string; url: string; ip?: string }) => ({
          method: request.method,
          url: request.url.split('?')[0],
          remoteAddress: request.ip,
        }),
      },
      // Asynchronous, so a burst of requests costs a few large writes rather
      // than one system call per log line; flushed on shutdown.
      stream: options.logStream ?? pino.destination({ dest: 1, sync: false }),
    },
    // One access-log line per request (below) instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    // Reuse a caller's X-Request-Id when it is sane, so logs correlate across services.
    requestIdHeader: false,
    genReqId: (request) => {
      const incoming = request.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    // Requests that arrive while closing are refused by src/http/drain.ts,
    // as problem+json with Retry-After (Fastify's own 503 is neither).
    return503OnClosing: false,
    // A client that sends its request (headers, then body) too slowly loses
    // the connection: Node checks every connectionsCheckingInterval, so
    // that is kept well below the timeouts.
    requestTimeout: timeouts.requestTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    http: {
      headersTimeout: timeouts.headersTimeoutMs,
      connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(timeouts.headersTimeoutMs / 4))),
    },
    // Requests Node cannot parse, and Fastify's own refusals (a URL it
    // cannot decode), are answered with problems too; Fastify's default
    // client-error handler would log the raw packet, Authorization included.
    clientErrorHandler: (error, socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const problem = problemForClientError(error);
      app.log.debug({ code: error.code, status: problem.toProblem().status }, 'client error');
      writeClientErrorProblem(socket, problem);
    },
    frameworkErrors: (error, request, reply) => sendFrameworkError(error, request, reply),
    // A path's user id may be a 255-character sub (the default limit is 100).
    routerOptions: { maxParamLength: 1_024 },
    ajv: {
      // Strict bodies: unknown fields are errors, never silently dropped, and
      // "true" is not a boolean.
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: true },
    },
  });

  // Callback-style hooks: they do nothing asynchronous, and an async hook
  // costs every request a promise and a microtask.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('X-Request-Id', request.id);
    done();
  });
  const drain = options.drain ?? new DrainState();
  registerDrain(app, drain);
  app.addHook('onResponse', (request, reply, done) => {
    request.log.info(
      { req: request, res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime },
      'request completed',
    );
    done();
  });

  // Before every route, so its onResponse hook sees all of them.
  if (options.metrics) registerMetrics(app, { pool: options.pool });

  // Only application/json bodies are accepted (Fastify also parses text/plain
  // by default). An empty body is no body, whatever its Content-Type says:
  // fetch and axios wrappers label every request application/json, DELETE
  // and the toggle included. Routes that need a body say so (422).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') return done(null, undefined);
    parseJson(request, body as string, done);
  });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => {
    if ((body as Buffer).length === 0) return done(null, undefined);
    done(new ProblemError('unsupportedMediaType', 'Send the body as application/json.'));
  });

  for (const schema of sharedSchemas) app.addSchema(schema);

  app.setErrorHandler(async (error, request, reply) => {
    const problem = toProblem(error);
    if (problem) {
      if (problem.kind === 'unavailable') request.log.warn({ err: error }, 'dependency unavailable');
      if (problem.kind === 'misconfigured') request.log.error({ err: error }, `database misconfigured: ${(error as Error).message}`);
      return sendProblem(reply, problem);
    }
    request.log.error({ err: error }, 'unexpected error');
    return sendProblem(reply, new ProblemError('internal', 'Something went wrong on our side; the request id identifies it in our logs.'));
  });

  app.setNotFoundHandler(async (request, reply) =>
    sendProblem(reply, new ProblemError('notFound', `No route ${request.method} ${request.url.split('?')[0]}.`)),
  );

  const corsOptions = {
    origin: options.corsOrigins.length ? options.corsOrigins : false,
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'If-Match', 'If-None-Match', 'Idempotency-Key', 'X-Request-Id'],
    exposedHeaders: ['ETag', 'Location', 'Link', 'Allow', 'Idempotent-Replayed', 'Retry-After', 'X-Request-Id', 'WWW-Authenticate'],
    maxAge: 600,
  };
  // Only a real preflight (Origin and Access-Control-Request-Method) is
  // answered by the CORS plugin; any other OPTIONS reaches the routes and is
  // a 405 problem like every other method a path does not serve.
  await app.register(cors, () => (request: { method: string; headers: Record<string, unknown> }, callback: (error: Error | null, corsOptions: object) => void) => {
    const preflight = request.method !== 'OPTIONS' || (request.headers.origin !== undefined && request.headers['access-control-request-method'] !== undefined);
    callback(null, preflight ? corsOptions : { ...corsOptions, preflight: false });
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Task API',
        version: '1.0.0',
        description:
          'Tasks that belong to exactly one user, isolated by PostgreSQL row-level security. ' +
          'Every route under /api/{user_id}/tasks... is also served as /api/tasks..., where the owner is the token subject.',
      },
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
    },
    // The toggle's body is optional: without one the task flips.
    transformObject: (document) => {
      const openapi = ('openapiObject' in document ? document.openapiObject : document.swaggerObject) as {
        paths?: Record<string, { patch?: { requestBody?: { required?: boolean } } }>;
      };
      for (const [path, item] of Object.entries(openapi.paths ?? {})) {
        if (path.endsWith('/complete') && item.patch?.requestBody) item.patch.requestBody.required = false;
      }
      return openapi as never;
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes, { pool: options.pool, drain });
  const taskOptions = { runAsUser: options.runAsUser, verify: options.verify, cursors: new ListCursors(options.cursorSecret) };
  await app.register(taskRoutes, { ...taskOptions, prefix: '/api' });
  await app.register(taskRoutes, { ...taskOptions, prefix: '/api/:user_id' });

  return app;
}
