// JSON schemas: the single description of what the API accepts and returns.
// Fastify validates requests and serializes responses with them, and
// /openapi.json is generated from them, so the document cannot drift.

export const TITLE_MAX = 255;
/** PostgreSQL text cannot hold U+0000, and an unpaired UTF-16 surrogate has no UTF-8 form. */
export const STORABLE_TEXT = '^[^\\u0000\\uD800-\\uDFFF]*$';
export const DESCRIPTION_MAX = 10_000;

const title = {
  type: 'string',
  minLength: 1,
  maxLength: TITLE_MAX,
  pattern: STORABLE_TEXT,
  description: `Leading and trailing white space is trimmed; 1–${TITLE_MAX} characters remain.`,
  examples: ['Buy milk'],
} as const;
const description = {
  type: ['string', 'null'],
  maxLength: DESCRIPTION_MAX,
  pattern: STORABLE_TEXT,
  description: `At most ${DESCRIPTION_MAX} characters, or null.`,
} as const;
const completed = { type: 'boolean', description: 'JSON true or false only.' } as const;

export const taskSchema = {
  $id: 'Task',
  type: 'object',
  additionalProperties: false,
  required: ['id', 'user_id', 'title', 'description', 'completed', 'created_at', 'updated_at'],
  properties: {
    id: { type: 'string', format: 'uuid', description: 'Assigned by the database.' },
    user_id: { type: 'string', description: "The owner: the `sub` of the token that created the task." },
    title: { type: 'string' },
    description: { type: ['string', 'null'] },
    completed: { type: 'boolean' },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
  },
} as const;

export const problemSchema = {
  $id: 'Problem',
  type: 'object',
  description: 'RFC 9457 problem details, served as application/problem+json.',
  required: ['type', 'title', 'status', 'detail'],
  properties: {
    type: { type: 'string', description: 'Stable identifier of the kind of error, e.g. /problems/not-found.' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    errors: {
      type: 'array',
      description: 'Validation errors only: one entry per offending field.',
      items: {
        type: 'object',
        required: ['field', 'reason'],
        properties: { field: { type: 'string' }, reason: { type: 'string' } },
      },
    },
  },
} as const;

// Read-only fields a client may send back (GET, edit, PUT back): accepted and
// ignored when they agree with the path and the caller; a disagreeing id or
// user_id is 422 (checked by the routes, src/http/read-only-fields.ts).
const sentBackId = { type: 'string', description: "Read-only: accepted when equal to the path's id, and ignored." } as const;
const sentBackUserId = { type: 'string', description: "Read-only: accepted when equal to the caller (the token's sub), and ignored." } as const;
const sentBackTimestamp = { type: 'string', description: 'Read-only: accepted and ignored.' } as const;
const sentBackFields = { id: sentBackId, user_id: sentBackUserId, created_at: sentBackTimestamp, updated_at: sentBackTimestamp };

export const createTaskBody = {
  $id: 'CreateTask',
  type: 'object',
  additionalProperties: false,
  required: ['title'],
  properties: { title, description, completed, user_id: sentBackUserId },
} as const;

export const replaceTaskBody = {
  $id: 'ReplaceTask',
  type: 'object',
  description: '`title` is required; `description` and `completed` left out keep their stored values (a null description clears it).',
  additionalProperties: false,
  required: ['title'],
  properties: { title, description, completed, ...sentBackFields },
} as const;

export const updateTaskBody = {
  $id: 'UpdateTask',
  type: 'object',
  description: 'Any non-empty subset of title, description and completed.',
  additionalProperties: false,
  minProperties: 1,
  properties: { title, description, completed, ...sentBackFields },
} as const;

export const setCompletedBody = {
  $id: 'SetCompleted',
  type: ['object', 'null'],
  description:
    'Optional. Without a body, or with {}, the task flips; with `completed`, it is set (idempotent: setting the current value changes nothing).',
  additionalProperties: false,
  properties: { completed, ...sentBackFields },
} as const;

export const sharedSchemas = [taskSchema, problemSchema, createTaskBody, replaceTaskBody, updateTaskBody, setCompletedBody];
