// The task routes, registered once per route family: /api/tasks... and
// /api/{user_id}/tasks.... Each handler is one SQL call as the verified user;
// ownership is decided by PostgreSQL, not here.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TokenVerifier } from '../../auth/token-verifier.js';
import type { AccessMode, RequestRunner, Statement } from '../../db/request-transaction.js';
import { renderTask, VERSION, type RawTaskRow } from '../../db/task-json.js';
import { TaskListPageCollector } from '../../db/task-list-page.js';
import { rowsOf } from '../../db/transaction-pipeline.js';
import { taskQueries, type IdempotentCreateRow, type TaskInput } from '../../db/task-queries.js';
import { registerAuthentication } from '../authentication.js';
import { etagOf, parseIfMatch } from '../if-match.js';
import { invalidRequest, ProblemError } from '../problem.js';
import { acceptReadOnlyFields, requireBody } from '../request-body.js';
import { knownListVersions, listEtag, nextPageUrl, type ListCursors, type ListQueryParams } from '../task-list-query.js';
import { problemResponses, taskRouteSchemasFor } from './task-route-schemas.js';

export interface TaskRoutesOptions {
  runAsUser: RequestRunner;
  verify: TokenVerifier;
  /** Opens and issues the list's page cursors. */
  cursors: ListCursors;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type IdParams = { id: string; user_id?: string };

/** A malformed id names no task: 404, like a well-formed id that matches none. */
function taskId(request: FastifyRequest): string {
  const { id } = request.params as IdParams;
  if (!UUID.test(id)) throw new ProblemError('notFound', 'No task with this id.');
  return id.toLowerCase();
}

// Titles are trimmed before validation, so " a " counts as one character
// and "   " as empty (the database trims the same way). Only on the routes
// that take a title; a callback, as it does nothing asynchronous.
function trimTitle(request: FastifyRequest, _reply: FastifyReply, done: () => void) {
  const body = request.body as { title?: unknown } | null | undefined;
  if (body && typeof body === 'object' && typeof body.title === 'string') body.title = body.title.trim();
  done();
}

function ifMatch(request: FastifyRequest) {
  const header = request.headers['if-match'];
  return parseIfMatch(Array.isArray(header) ? header.join(',') : header);
}

const JSON_TYPE = 'application/json; charset=utf-8';

function sendTask(reply: FastifyReply, task: RawTaskRow, status = 200) {
  return reply.code(status).header('ETag', etagOf(task[VERSION])).type(JSON_TYPE).send(renderTask(task));
}

/**
 * Reads may be stored by the browser, which must revalidate each time (the
 * ETag makes that a 304) and keep one copy per token: never shared, never
 * served to another account.
 */
function revalidateEachTime(reply: FastifyReply) {
  const vary = reply.getHeader('Vary'); // CORS may have added Origin
  reply.header('Cache-Control', 'private, no-cache').header('Vary', vary ? `${vary}, Authorization` : 'Authorization');
}

/** If-None-Match names this ETag (weak comparison, RFC 9110 13.1.2). */
function noneMatchNames(request: FastifyRequest, etag: string): boolean {
  const header = request.headers['if-none-match'];
  if (header === undefined) return false;
  return header.split(',').some((entry) => {
    const tag = entry.trim();
    return tag === '*' || tag.replace(/^W\//, '') === etag;
  });
}

export async function taskRoutes(app: FastifyInstance, options: TaskRoutesOptions) {
  registerAuthentication(app, options.verify);
  const taskRouteSchemas = taskRouteSchemasFor(app.prefix.includes(':user_id'));

  const run = (request: FastifyRequest, mode: AccessMode, statement: Statement) =>
    options.runAsUser(request.identity, mode, statement, rowsOf<RawTaskRow>());
  const runOne = async (request: FastifyRequest, mode: AccessMode, statement: Statement) =>
    (await run(request, mode, statement))[0];

  app.get('/tasks', { schema: taskRouteSchemas.list, preValidation: limitAsNumber }, async (request, reply) => {
    const sub = request.identity.sub;
    const query = options.cursors.parse(request.query as ListQueryParams, sub);
    const known = knownListVersions(request.headers['if-none-match'], sub, query);
    const page = new TaskListPageCollector();
    const body = await options.runAsUser.stream(request.identity, taskQueries.list(query, known), page);
    revalidateEachTime(reply);
    reply.header('ETag', listEtag(page.version, sub, query));
    if (known.includes(page.version)) {
      if (!Buffer.isBuffer(body)) body.destroy(); // unreachable: an unchanged list sends no tasks
      return reply.code(304).send();
    }
    if (page.next) {
      const cursor = options.cursors.issue(page.next, sub, query);
      reply.header('Link', `<${nextPageUrl(request.url.split('?')[0], query, cursor)}>; rel="next"`);
    }
    return reply.type(JSON_TYPE).send(body);
  });

  app.post('/tasks', { schema: taskRouteSchemas.create, preValidation: [requireBody, trimTitle], preHandler: acceptReadOnlyFields }, async (request, reply) => {
    const body = request.body as TaskInput;
    const idempotencyKey = request.headers['idempotency-key'] as string | undefined;
    let task: RawTaskRow;
    if (idempotencyKey === undefined) {
      task = await runOne(request, 'write', taskQueries.create(body.title, body.description ?? null, body.completed ?? false));
    } else {
      const [result] = await options.runAsUser(
        request.identity,
        'write',
        taskQueries.createIdempotent(idempotencyKey, body),
        rowsOf<IdempotentCreateRow>(),
      );
      task = result.slice(0, 8) as RawTaskRow;
      if (result[8] === 't') reply.header('Idempotent-Replayed', 'true');
    }
    const { user_id } = request.params as { user_id?: string };
    const base = user_id === undefined ? '/api' : `/api/${encodeURIComponent(user_id)}`;
    reply.header('Location', `${base}/tasks/${task[0]}`);
    return sendTask(reply, task, 201);
  });

  app.get('/tasks/:id', { schema: taskRouteSchemas.get }, async (request, reply) => {
    const task = await runOne(request, 'read', taskQueries.get(taskId(request)));
    revalidateEachTime(reply);
    const etag = etagOf(task[VERSION]);
    if (noneMatchNames(request, etag)) return reply.code(304).header('ETag', etag).send();
    return sendTask(reply, task);
  });

  // PUT: title required; description and completed left out keep their
  // stored values. The same SQL as PATCH, with the title always present.
  app.put(
    '/tasks/:id',
    { schema: taskRouteSchemas.replace, preValidation: [requireBody, trimTitle], preHandler: acceptReadOnlyFields },
    async (request, reply) => {
      const statement = taskQueries.update(taskId(request), request.body as TaskInput & Record<string, unknown>, ifMatch(request));
      return sendTask(reply, await runOne(request, 'write', statement));
    },
  );

  app.patch(
    '/tasks/:id',
    { schema: taskRouteSchemas.update, preValidation: [requireBody, trimTitle], preHandler: [acceptReadOnlyFields, requireChange] },
    async (request, reply) => {
      const statement = taskQueries.update(taskId(request), request.body as TaskInput & Record<string, unknown>, ifMatch(request));
      return sendTask(reply, await runOne(request, 'write', statement));
    },
  );

  app.delete('/tasks/:id', { schema: taskRouteSchemas.delete }, async (request, reply) => {
    await runOne(request, 'write', taskQueries.delete(taskId(request), ifMatch(request)));
    return reply.code(204).send();
  });

  app.patch(
    '/tasks/:id/complete',
    {
      schema: taskRouteSchemas.complete,
      // No body (or an empty one) means "flip": validate it as null.
      preValidation: (request, _reply, done) => {
        if (request.body === undefined) request.body = null;
        done();
      },
      preHandler: acceptReadOnlyFields,
    },
    async (request, reply) => {
      // No body, null or {}: flip. {"completed": b}: set.
      const body = request.body as { completed?: boolean } | null;
      const id = taskId(request);
      const statement =
        body?.completed === undefined
          ? taskQueries.toggle(id, ifMatch(request))
          : taskQueries.setCompleted(id, body.completed, ifMatch(request));
      return sendTask(reply, await runOne(request, 'write', statement));
    },
  );

  registerMethodNotAllowed(
    app,
    {
      '/tasks': ['GET', 'POST'],
      '/tasks/:id': ['GET', 'PUT', 'PATCH', 'DELETE'],
      '/tasks/:id/complete': ['PATCH'],
    },
    // OPTIONS too: a CORS preflight is answered before routing (app.ts).
    [...ALL_METHODS, 'OPTIONS'],
  );
}

const ALL_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** Query strings are text; a page size of digits is validated as the integer it is. */
function limitAsNumber(request: FastifyRequest, _reply: FastifyReply, done: () => void) {
  const query = request.query as { limit?: unknown };
  if (typeof query.limit === 'string' && /^\d{1,7}$/.test(query.limit)) query.limit = Number(query.limit);
  done();
}

/** PATCH: after the read-only fields are dropped, something must be left to change. */
function requireChange(request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void) {
  if (Object.keys(request.body as object).length === 0) {
    return done(invalidRequest([{ field: 'body', reason: 'must contain at least one of title, description, completed' }]));
  }
  done();
}

/** 405 with Allow for every method a known path does not serve. */
function registerMethodNotAllowed(app: FastifyInstance, served: Record<string, string[]>, candidates: string[]) {
  for (const [url, methods] of Object.entries(served)) {
    const allow = [...methods, ...(methods.includes('GET') ? ['HEAD'] : [])].join(', ');
    app.route({
      method: candidates.filter((method) => !methods.includes(method)),
      url,
      schema: { hide: true, response: problemResponses(405) },
      handler: async () => {
        throw new ProblemError('methodNotAllowed', `${url.replace(':id', '{id}')} serves ${allow}.`, {
          headers: { Allow: allow },
        });
      },
    });
  }
}
