// What real frontends send as bodies, made into what the task functions take:
// an empty body is no body (checked here where one is required), and the
// read-only fields of a task sent back (GET, edit, PUT back) are accepted when
// they agree with the path and the caller, then dropped, so nothing a client
// sends can change them.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { invalidRequest, type FieldError } from './problem.js';

/** Fields the API sets; a client may send them back unchanged. */
const READ_ONLY_FIELDS = ['id', 'user_id', 'created_at', 'updated_at'] as const;

/** preValidation: a route that needs a body answers a missing or empty one with 422. */
export function requireBody(request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void) {
  if (request.body === undefined) return done(invalidRequest([{ field: 'body', reason: 'is required' }]));
  done();
}

/**
 * preHandler (after schema validation): checks the read-only fields a body
 * carries against the path's task id and the caller, then removes them.
 */
export function acceptReadOnlyFields(request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void) {
  const body = request.body as Record<string, unknown> | null | undefined;
  if (!body || typeof body !== 'object') return done();
  const errors: FieldError[] = [];
  const pathId = (request.params as { id?: string }).id;
  if (typeof body.id === 'string' && body.id.toLowerCase() !== pathId?.toLowerCase()) {
    errors.push({ field: 'id', reason: "must equal the task's id in the path (it cannot be changed)" });
  }
  if (typeof body.user_id === 'string' && body.user_id !== request.identity.sub) {
    errors.push({ field: 'user_id', reason: 'must equal the signed-in user (a task cannot be given to another user)' });
  }
  if (errors.length) return done(invalidRequest(errors));
  for (const field of READ_ONLY_FIELDS) delete body[field];
  done();
}
