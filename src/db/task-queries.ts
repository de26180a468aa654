// The SQL the gateway sends for each task operation. Each is one call into
// the api schema; row-level security and the functions decide the outcome.
import type { Statement } from './request-transaction.js';

export interface TaskRow {
  id: string;
  user_id: string;
  title: string;
  description: string | null;
  completed: boolean;
  created_at: string;
  updated_at: string;
  /** int8 arrives as text; it is the ETag's value. */
  version: string;
}

const COLUMNS = 'id, user_id, title, description, completed, created_at, updated_at, version';

export type IfMatch = string[] | null;

export interface TaskInputJson {
  title: string;
  description?: string | null;
  completed?: boolean;
}

export interface IdempotentCreateRow {
  /** The task as PostgreSQL's to_jsonb rendered it. */
  task: Omit<TaskRow, 'version'> & { version: number };
  replayed: boolean;
}

/** A task stored as jsonb (timestamps as 2026-11-27T13:00:00.123+00:00) in the API's shape. */
export function taskFromJson(task: IdempotentCreateRow['task']): TaskRow {
  const utc = (value: string) => new Date(value).toISOString();
  return {
    ...task,
    created_at: utc(task.created_at),
    updated_at: utc(task.updated_at),
    version: String(task.version),
  };
}

export const taskQueries = {
  list(): Statement {
    return {
      name: 'task_api_list',
      text: `select ${COLUMNS} from api.tasks order by created_at desc, id desc`,
      values: [],
    };
  },
  get(id: string): Statement {
    return { name: 'task_api_get', text: `select ${COLUMNS} from api.get_task($1)`, values: [id] };
  },
  create(title: string, description: string | null, completed: boolean): Statement {
    return {
      name: 'task_api_create',
      text: `select ${COLUMNS} from api.create_task($1, $2, $3)`,
      values: [title, description, completed],
    };
  },
  /** POST with an Idempotency-Key: the task as JSON, and whether it is a replay. */
  createIdempotent(key: string, request: TaskInputJson): Statement {
    return {
      name: 'task_api_create_idempotent',
      text: 'select task, replayed from api.create_task_idempotent($1, $2)',
      values: [key, JSON.stringify(request)],
    };
  },
  replace(id: string, title: string, description: string | null, completed: boolean, ifMatch: IfMatch): Statement {
    return {
      name: 'task_api_replace',
      text: `select ${COLUMNS} from api.replace_task($1, $2, $3, $4, $5)`,
      values: [id, title, description, completed, ifMatch],
    };
  },
  update(id: string, changes: Record<string, unknown>, ifMatch: IfMatch): Statement {
    return {
      name: 'task_api_update',
      text: `select ${COLUMNS} from api.update_task($1, $2, $3)`,
      values: [id, JSON.stringify(changes), ifMatch],
    };
  },
  toggle(id: string, ifMatch: IfMatch): Statement {
    return { name: 'task_api_toggle', text: `select ${COLUMNS} from api.toggle_task($1, $2)`, values: [id, ifMatch] };
  },
  setCompleted(id: string, completed: boolean, ifMatch: IfMatch): Statement {
    return {
      name: 'task_api_set_completed',
      text: `select ${COLUMNS} from api.set_task_completed($1, $2, $3)`,
      values: [id, completed, ifMatch],
    };
  },
  delete(id: string, ifMatch: IfMatch): Statement {
    return { name: 'task_api_delete', text: `select ${COLUMNS} from api.delete_task($1, $2)`, values: [id, ifMatch] };
  },
};
