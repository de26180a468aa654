// Request and response schemas of each task route, as Fastify validates and
// serializes them and as /openapi.json describes them.

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
  422: 'The body failed validation; `errors` names each field.',
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
      response: {
        200: {
          description: "The caller's tasks ordered by created_at, then id, descending; [] when none.",
          content: { 'application/json': { schema: { type: 'array', items: { $ref: 'Task#' } } } },
        },
        ...problemResponses(401, 403, 503),
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
      response: { ...taskResponse(200, 'The task.'), ...problemResponses(401, 403, 404, 503) },
    },
    replace: {
      summary: 'Replace a task (every field required)',
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
      summary: 'Flip completed, or set it with {"completed": true|false}',
      tags,
      security,
      params: idParam,
      headers: ifMatchHeader,
      body: { $ref: 'SetCompleted#' },
      response: { ...taskResponse(200, 'The task after the change.'), ...writeErrors },
    },
  };
}
