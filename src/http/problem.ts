// RFC 9457 problem details: every error the API returns has this shape and
// the application/problem+json media type.
import type { FastifyReply } from 'fastify';

export interface FieldError {
  /** The body field at fault, or "body" for the body as a whole. */
  field: string;
  reason: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldError[];
}

/** Each kind of error, with its stable `type` and its title. */
export const PROBLEMS = {
  malformedJson: { status: 400, type: '/problems/malformed-json', title: 'Malformed JSON' },
  unauthorized: { status: 401, type: '/problems/unauthorized', title: 'Authentication required' },
  forbidden: { status: 403, type: '/problems/forbidden', title: 'Forbidden' },
  notFound: { status: 404, type: '/problems/not-found', title: 'Not found' },
  methodNotAllowed: { status: 405, type: '/problems/method-not-allowed', title: 'Method not allowed' },
  taskLimit: { status: 409, type: '/problems/task-limit-reached', title: 'Task limit reached' },
  byteQuota: { status: 409, type: '/problems/storage-quota-reached', title: 'Storage quota reached' },
  idempotencyKeyLimit: { status: 409, type: '/problems/idempotency-key-limit-reached', title: 'Idempotency-Key limit reached' },
  idempotencyInProgress: { status: 409, type: '/problems/idempotency-key-in-use', title: 'Request with this Idempotency-Key in progress' },
  preconditionFailed: { status: 412, type: '/problems/precondition-failed', title: 'Precondition failed' },
  bodyTooLarge: { status: 413, type: '/problems/body-too-large', title: 'Body too large' },
  unsupportedMediaType: { status: 415, type: '/problems/unsupported-media-type', title: 'Unsupported media type' },
  validation: { status: 422, type: '/problems/validation', title: 'Invalid request' },
  idempotencyMismatch: { status: 422, type: '/problems/idempotency-key-reused', title: 'Idempotency-Key reused with a different request' },
  internal: { status: 500, type: '/problems/internal', title: 'Internal server error' },
  // 503 in two kinds: nothing was changed (retry freely), or a write was sent
  // and its outcome is unknown (retry only with Idempotency-Key / If-Match).
  unavailable: { status: 503, type: '/problems/unavailable', title: 'Service unavailable' },
  outcomeUnknown: { status: 503, type: '/problems/outcome-unknown', title: 'Outcome unknown' },
  // Framework-level errors: the request could not be read as HTTP, or not routed.
  badRequest: { status: 400, type: '/problems/bad-request', title: 'Bad request' },
  requestTimeout: { status: 408, type: '/problems/request-timeout', title: 'Request timeout' },
  uriTooLong: { status: 414, type: '/problems/uri-too-long', title: 'URI too long' },
  headersTooLarge: { status: 431, type: '/problems/headers-too-large', title: 'Request headers too large' },
  // The gateway's own set-up is wrong (database credentials, schema not migrated): no retry helps.
  misconfigured: { status: 500, type: '/problems/misconfigured', title: 'Service misconfigured' },
} as const;

export type ProblemKind = keyof typeof PROBLEMS;

export class ProblemError extends Error {
  constructor(
    readonly kind: ProblemKind,
    readonly detail: string,
    readonly extra: { errors?: FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(detail);
  }

  toProblem(): Problem {
    const { status, type, title } = PROBLEMS[this.kind];
    return { type, title, status, detail: this.detail, ...(this.extra.errors ? { errors: this.extra.errors } : {}) };
  }
}

/** A 422 whose detail names every failing field and its reason, so a client can show it as it is. */
export function invalidRequest(errors: FieldError[]): ProblemError {
  return new ProblemError('validation', errors.map((error) => `${error.field}: ${error.reason}`).join('; '), { errors });
}

export function sendProblem(reply: FastifyReply, error: ProblemError): FastifyReply {
  const problem = error.toProblem();
  for (const [name, value] of Object.entries(error.extra.headers ?? {})) reply.header(name, value);
  return reply.code(problem.status).type('application/problem+json').send(problem);
}

/** Seconds a client should wait before retrying after a 503. */
export const RETRY_AFTER_SECONDS = '2';
