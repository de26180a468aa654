// Task rows straight from PostgreSQL's text format to the API's JSON, with no
// intermediate objects: a list of 100 tasks is the hot path of the API, and
// parsing each value into a JavaScript type only to serialize it again cost
// more than everything else the gateway does (see docs/performance.md).
//
// Column order is TASK_COLUMNS'. The shape is the Task schema in
// src/http/schemas.ts; tests validate real responses against that schema.

export const TASK_COLUMNS = 'id, user_id, title, description, completed, created_at, updated_at, version';

/** A task row as PostgreSQL sends it in text format. */
export type RawTaskRow = [
  id: string,
  user_id: string,
  title: string,
  description: string | null,
  completed: 't' | 'f',
  created_at: string,
  updated_at: string,
  version: string,
];

export const VERSION = 7;

/**
 * timestamptz text in the UTC session time zone (2026-11-27 13:00:00.12+00,
 * the fraction 0–6 digits) as RFC 3339 with milliseconds: 2026-11-27T13:00:00.120Z.
 */
export function timestampToRfc3339(value: string): string {
  // Fast path: "YYYY-MM-DD HH:MM:SS[.f{1,6}]+00"
  if (value.length >= 22 && value.charCodeAt(10) === 32 && value.endsWith('+00')) {
    const seconds = value.slice(0, 10) + 'T' + value.slice(11, 19);
    const fraction = value.length > 22 ? value.slice(20, value.length - 3) : '';
    return `${seconds}.${(fraction + '000').slice(0, 3)}Z`;
  }
  return new Date(value).toISOString();
}

/** The API's JSON for one task row. */
export function renderTask(row: RawTaskRow): string {
  return (
    '{"id":"' + row[0] +
    '","user_id":' + JSON.stringify(row[1]) +
    ',"title":' + JSON.stringify(row[2]) +
    ',"description":' + (row[3] === null ? 'null' : JSON.stringify(row[3])) +
    ',"completed":' + (row[4] === 't' ? 'true' : 'false') +
    ',"created_at":"' + timestampToRfc3339(row[5]) +
    '","updated_at":"' + timestampToRfc3339(row[6]) +
    '"}'
  );
}

/**
 * The API's JSON for a list of rows. Responses are rendered from the wire
 * bytes by TaskListJson (task-json-bytes.ts); this string version is the
 * reference the tests hold that renderer to.
 */
export function renderTaskList(rows: RawTaskRow[]): string {
  let json = '[';
  for (let i = 0; i < rows.length; i++) json += (i === 0 ? '' : ',') + renderTask(rows[i]);
  return json + ']';
}
