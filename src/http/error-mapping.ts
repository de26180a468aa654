// Turns what can go wrong — database errors, Fastify's body handling, schema
// validation — into problem details. SQLSTATEs map as PostgREST maps them.
import type { FastifyError } from 'fastify';
import { InvalidTokenError, KeySourceUnavailableError } from '../auth/token-verifier.js';
import { UserBusyError } from '../db/per-user-slots.js';
import { DatabaseMisconfiguredError } from '../db/connection-errors.js';
import { DatabaseUnavailableError, WriteOutcomeUnknownError } from '../db/request-transaction.js';
import { problemForStatus } from './framework-errors.js';
import { invalidRequest, ProblemError, RETRY_AFTER_SECONDS, type FieldError } from './problem.js';
import { DESCRIPTION_MAX, TITLE_MAX } from './schemas.js';

interface DatabaseError {
  code?: string;
  detail?: string;
  constraint?: string;
  column?: string;
  message: string;
}

const CONSTRAINT_FIELDS: Record<string, FieldError> = {
  tasks_title_length: { field: 'title', reason: `must be 1–${TITLE_MAX} characters after trimming white space` },
  tasks_title_trimmed: { field: 'title', reason: 'must not start or end with white space' },
  tasks_description_length: { field: 'description', reason: `must be at most ${DESCRIPTION_MAX} characters` },
};

/**
 * SQLSTATEs meaning "retry shortly": connection exceptions (08), shutting
 * down or starting up, too many connections, statement timeout, out of
 * resources; and serialization failures and deadlocks, where a retry works.
 */
function isRetryableSqlstate(code = ''): boolean {
  return code.startsWith('08') || ['57P01', '57P02', '57P03', '53300', '57014', '53000', '58000', '40001', '40P01'].includes(code);
}

export function unavailable(detail = 'The database is unavailable; retry shortly.'): ProblemError {
  return new ProblemError('unavailable', detail, { headers: { 'Retry-After': RETRY_AFTER_SECONDS } });
}

/** A write that was sent and never answered: it may or may not have been applied (never later than now). */
export function outcomeUnknown(): ProblemError {
  return new ProblemError(
    'outcomeUnknown',
    'The write was sent to the database but no answer came back in time; it may or may not have been applied, and it will not be applied later. Retry with the same Idempotency-Key or If-Match.',
    { headers: { 'Retry-After': RETRY_AFTER_SECONDS } },
  );
}

export function misconfigured(): ProblemError {
  return new ProblemError(
    'misconfigured',
    'The service cannot use its database because of a configuration error; retrying will not help until its operators fix it. The request id identifies it in our logs.',
  );
}

export function fromDatabaseError(error: DatabaseError): ProblemError | undefined {
  if (error instanceof WriteOutcomeUnknownError) return outcomeUnknown();
  if (error instanceof DatabaseUnavailableError && error.retryAfterSeconds !== undefined) {
    return new ProblemError('unavailable', 'The database is down; the request was not attempted. Retry after Retry-After.', {
      headers: { 'Retry-After': String(error.retryAfterSeconds) },
    });
  }
  switch (error.code) {
    case 'PT503':
      return unavailable('The write reached the database after its deadline and was rolled back; nothing changed. Retry shortly.');
    case '42501':
      return new ProblemError('forbidden', 'This task belongs to another user.');
    case 'PT404':
      return new ProblemError('notFound', 'No task with this id.');
    case 'PT412':
      return new ProblemError('preconditionFailed', 'The task has changed since the ETag in If-Match; fetch it again.');
    case 'PT409':
      if (error.detail === 'byte-quota-reached') return new ProblemError('byteQuota', `${error.message}.`);
      if (error.detail === 'idempotency-key-limit-reached') return new ProblemError('idempotencyKeyLimit', `${error.message}.`);
      return error.detail === 'idempotency-key-in-use'
        ? new ProblemError('idempotencyInProgress', 'A request with this Idempotency-Key is still in progress; retry after it completes.', {
            headers: { 'Retry-After': '1' },
          })
        : new ProblemError('taskLimit', `${error.message}.`);
    case 'PT422':
      return new ProblemError('idempotencyMismatch', 'This Idempotency-Key was already used with a different request body.', {
        errors: [{ field: 'Idempotency-Key', reason: 'was used with a different body' }],
      });
    case '23514': {
      const field = CONSTRAINT_FIELDS[error.constraint ?? ''];
      return invalidRequest([field ?? { field: 'body', reason: 'violates a constraint' }]);
    }
    case '23502':
      return invalidRequest([{ field: error.column ?? 'body', reason: 'must not be null' }]);
    case '22021': // a NUL byte in text
    case '22P05': // \u0000 in jsonb
      return invalidRequest([{ field: 'body', reason: 'contains characters that cannot be stored' }]);
    case '22023':
    case '22P02':
      return invalidRequest([{ field: 'body', reason: error.message }]);
  }
  if (error instanceof DatabaseUnavailableError || isRetryableSqlstate(error.code)) return unavailable();
  return undefined;
}

interface AjvError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

function fieldOf(error: AjvError): string {
  if (error.keyword === 'required') return String(error.params.missingProperty);
  if (error.keyword === 'additionalProperties') return String(error.params.additionalProperty);
  const path = error.instancePath.replace(/^\//, '').replace(/\//g, '.');
  return path || 'body';
}

function reasonOf(error: AjvError): string {
  switch (error.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties':
      return 'is not a field of this request';
    case 'type': {
      const types = [error.params.type].flat().map(String);
      if (types.includes('object')) return 'must be a JSON object';
      if (types.length === 1 && types[0] === 'boolean') return 'must be true or false';
      return `must be ${types.map((t) => (t === 'null' ? 'null' : `${/^[aeiou]/.test(t) ? 'an' : 'a'} ${t}`)).join(' or ')}`;
    }
    case 'minLength':
      return 'must not be empty';
    case 'maxLength':
      return `must be at most ${error.params.limit} characters`;
    case 'pattern':
      return 'must not contain NUL characters or unpaired UTF-16 surrogates';
    case 'minProperties':
      return 'must contain at least one of title, description, completed';
    case 'enum':
      return `must be one of ${[error.params.allowedValues].flat().map(String).join(', ')}`;
    case 'minimum':
      return `must be at least ${error.params.limit}`;
    case 'maximum':
      return `must be at most ${error.params.limit}`;
    default:
      return error.message ?? 'is not valid';
  }
}

/** Header names as clients write them in the `field` of an error. */
const HEADER_FIELDS: Record<string, string> = { 'idempotency-key': 'Idempotency-Key', 'if-match': 'If-Match' };

export function fromValidation(errors: AjvError[], context = 'body'): ProblemError {
  const seen = new Set<string>();
  const fieldErrors: FieldError[] = [];
  for (const error of errors) {
    const field = fieldOf(error);
    const fieldError = { field: context === 'headers' ? (HEADER_FIELDS[field] ?? field) : field, reason: reasonOf(error) };
    const key = `${fieldError.field}:${fieldError.reason}`;
    if (!seen.has(key)) fieldErrors.push(fieldError);
    seen.add(key);
  }
  return invalidRequest(fieldErrors);
}

/** Everything the error handler can meet, as a problem; undefined means a 500. */
export function toProblem(error: unknown): ProblemError | undefined {
  if (error instanceof ProblemError) return error;
  if (error instanceof InvalidTokenError) {
    return new ProblemError('unauthorized', error.message, {
      headers: {
        'WWW-Authenticate': error.tokenPresent
          ? `Bearer error="invalid_token", error_description="${error.message.replace(/"/g, "'")}"`
          : 'Bearer',
      },
    });
  }
  if (error instanceof UserBusyError) {
    return unavailable('Too many of your lists are being sent at once; retry shortly.');
  }
  if (error instanceof KeySourceUnavailableError) {
    if (error.retryAfterSeconds !== undefined) {
      return new ProblemError('unavailable', 'The token is signed with a key that cannot be fetched yet; retry after the Retry-After seconds.', {
        headers: { 'Retry-After': String(error.retryAfterSeconds) },
      });
    }
    return unavailable('The keys needed to verify the token could not be fetched; retry shortly.');
  }

  if (error instanceof DatabaseMisconfiguredError) return misconfigured();

  const fastifyError = error as FastifyError & { validation?: AjvError[]; validationContext?: string };
  if (fastifyError.validation) return fromValidation(fastifyError.validation, fastifyError.validationContext);
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ProblemError('malformedJson', 'The request body is not valid JSON.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ProblemError('bodyTooLarge', 'The request body is larger than 64 KiB.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ProblemError('malformedJson', 'The request body does not match its Content-Length.');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ProblemError('unsupportedMediaType', 'Send the body as application/json.');
  }
  if (fastifyError.statusCode === 400 && error instanceof SyntaxError) {
    return new ProblemError('malformedJson', 'The request body is not valid JSON.');
  }
  const byStatus = problemForStatus(fastifyError.statusCode);
  if (byStatus) return byStatus;
  return fromDatabaseError(error as DatabaseError);
}
