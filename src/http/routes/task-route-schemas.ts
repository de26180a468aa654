// Request and response schemas of each task route, as Fastify validates and
// serializes them and as /openapi.json describes them.
import { LIST_LIMIT_MAX, LIST_SORTS, LIST_STATUSES } from '../task-list-query.js';

const STATUS_DESCRIPTIONS: Record<number, string> = {
  400: 'The body is not valid JSON.',
  401: 'No token, or the token failed verification. Carries WWW-Authenticate.',
  403: "The task belongs to another user, or the path's {user_id} is not the caller.",
  404: 'No task with this id (also for a malformed id or a deleted task).',
  405: 'The path does not serve this method. Carries Allow.',
  409: 'Idempotency-Key request still in progress, or the per-user task limit is reached.',
  412: "If-Match does not match the task's current ETag; nothing changed.",
  413: 'The body is larger than 64 KiB.',
  415: 'The body is not application/json.',
  422: 'The body or the query failed validation; `detail` names every field and reason, `errors` lists them.',
  500: 'Unexpected error; details are in the server log only.',
  503: 'The database or the JWKS endpoint is unreachable. Carries Retry-After.',
};

export function problemResponses(...statuses: number[]) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      {
        description: STATUS_DESCRIPTIONS[status],
        content: { 'application/problem+json': { schema: { $ref: 'Problem#' } } },
      },
    ]),
  );
}

const security = [{ bearerAuth: [] }];
const tags = ['tasks'];

const userIdProperty = {
  type: 'string',
  description: "Must equal the token's sub (route family /api/{user_id}/...).",
} as const;
const idProperty = { type: 'string', description: 'Task id (UUID). A malformed id is answered with 404.' } as const;

const ifMatchHeader = {
  type: 'object',
  properties: {
    'if-match': {
      type: 'string',
      description: 'ETag(s) from an earlier response, or *: the write happens only if the task still matches.',
    },
  },
} as const;

const ifNoneMatchHeader = {
  type: 'object',
  properties: {
    'if-none-match': {
      type: 'string',
      description: 'The ETag of a copy the client holds: 304, with no body, while it is still current.',
    },
  },
} as const;

const notModified = (description: string) => ({
  description,
  headers: { ETag: { type: 'string', description: 'The current ETag.' } },
  type: 'null',
});

/** GET /tasks query parameters; any others are ignored. */
const listQuery = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: [...LIST_STATUSES], default: 'all', description: 'all (the default), pending or completed.' },
    sort: {
      type: 'string',
      enum: [...LIST_SORTS],
      default: 'created',
      description: 'created: newest first (the default); title: case-insensitive A→Z, then newest first.',
    },
    limit: {
      type: 'integer',
      minimum: 1,
      maximum: LIST_LIMIT_MAX,
      description: `Page size (1–${LIST_LIMIT_MAX}). Without it the whole list is returned.`,
    },
    cursor: {
      type: 'string',
      description: 'Opaque: taken from the Link header of the previous page. Valid only for the same user, status and sort.',
    },
  },
} as const;

const taskResponse = (status: number, description: string, extraHeaders: Record<string, object> = {}) => ({
  [status]: {
    description,
    headers: { ETag: { type: 'string', description: "The task's current version (strong)." }, ...extraHeaders },
    content: { 'application/json': { schema: { $ref: 'Task#' } } },
  },
});

const writeErrors = problemResponses(400, 401, 403, 404, 412, 413, 415, 422, 503);

/**
 * The schemas of one route family: /api/{user_id}/... has a user_id path
 * parameter, /api/... does not, and the OpenAPI document says exactly that.
 */
export function taskRouteSchemasFor(withUserId: boolean) {
  const pathParams = (withId: boolean) => {
    const properties = {
      ...(withUserId ? { user_id: userIdProperty } : {}),
      ...(withId ? { id: idProperty } : {}),
    };
    return Object.keys(properties).length
      ? { type: 'object', required: Object.keys(properties), properties }
      : undefined;
  };
  const idParam = pathParams(true);
  // Fastify warns about an explicitly undefined params schema: leave the key out.
  const listParams = withUserId ? { params: pathParams(false) } : {};
  return {
    list: {
      summary: "List the caller's tasks, newest first",
      tags,
      security,
      ...listParams,
      querystring: listQuery,
      headers: ifNoneMatchHeader,
      response: {
        200: {
          description:
            "The caller's tasks: newest first (created_at, then id, descending), or with sort=title by title " +
            '(case-insensitive A→Z), then newest first; [] when none. With `limit`, at most that many, and a ' +
            '`Link: <…>; rel="next"` header when more exist.',
          headers: {
            ETag: { type: 'string', description: "The list's version for this user and query; send it as If-None-Match." },
            Link: { type: 'string', description: 'With limit, when more tasks exist: <url of the next page>; rel="next".' },
            'Cache-Control': { type: 'string', description: 'private, no-cache: the browser may store it and revalidates every time.' },
          },
          content: { 'application/json': { schema: { type: 'array', items: { $ref: 'Task#' } } } },
        },
        304: notModified('The list has not changed since the ETag in If-None-Match.'),
        ...problemResponses(401, 403, 422, 503),
      },
    },
    create: {
      summary: 'Create a task',
      tags,
      security,
      ...listParams,
      headers: {
        type: 'object',
        properties: {
          'idempotency-key': {
            type: 'string',
            minLength: 1,
            maxLength: 255,
            description: 'Makes a retried POST safe: a repeat within 24 hours returns the original response.',
          },
        },
      },
      body: { $ref: 'CreateTask#' },
      response: {
        ...taskResponse(201, 'The created task.', {
          Location: { type: 'string', description: 'URL of the new task.' },
          'Idempotent-Replayed': { type: 'string', enum: ['true'], description: 'Present on a replay.' },
        }),
        ...problemResponses(400, 401, 403, 409, 413, 415, 422, 503),
      },
    },
    get: {
      summary: 'Get one task',
      tags,
      security,
      params: idParam,
      headers: ifNoneMatchHeader,
      response: {
        ...taskResponse(200, 'The task.'),
        304: notModified('The task has not changed since the ETag in If-None-Match.'),
        ...problemResponses(401, 403, 404, 503),
      },
    },
    replace: {
      summary: 'Update a task: title required; description and completed left out keep their values',
      tags,
      security,
      params: idParam,
      headers: ifMatchHeader,
      body: { $ref: 'ReplaceTask#' },
      response: { ...taskResponse(200, 'The replaced task.'), ...writeErrors },
    },
    update: {
      summary: 'Change some fields of a task',
      tags,
      security,
      params: idParam,
      headers: ifMatchHeader,
      body: { $ref: 'UpdateTask#' },
      response: { ...taskResponse(200, 'The updated task.'), ...writeErrors },
    },
    delete: {
      summary: 'Delete a task',
      tags,
      security,
      params: idParam,
      headers: ifMatchHeader,
      response: { 204: { description: 'Deleted; no body.', type: 'null' }, ...problemResponses(401, 403, 404, 412, 503) },
    },
    complete: {
      summary: 'Flip completed (no body, or {}), or set it with {"completed": true|false}',
      tags,
      security,
      params: idParam,
      headers: ifMatchHeader,
      body: { $ref: 'SetCompleted#' },
      response: { ...taskResponse(200, 'The task after the change.'), ...writeErrors },
    },
  };
}
