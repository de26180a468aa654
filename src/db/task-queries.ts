// The SQL the gateway sends for each task operation. Each is one call into
// the api schema; row-level security and the functions decide the outcome.
import type { Statement } from './request-transaction.js';
import { TASK_COLUMNS, type RawTaskRow } from './task-json.js';

export type IfMatch = string[] | null;

/** A task as a request body gives it (validated by src/http/schemas.ts). */
export interface TaskInput {
  title: string;
  description?: string | null;
  completed?: boolean;
}

/** A create with an Idempotency-Key: the task's columns, then whether it is a replay. */
export type IdempotentCreateRow = [...RawTaskRow, replayed: 't' | 'f'];

export const taskQueries = {
  list(): Statement {
    return {
      name: 'task_api_list',
      text: `select ${TASK_COLUMNS} from api.tasks order by created_at desc, id desc`,
      values: [],
    };
  },
  get(id: string): Statement {
    return { name: 'task_api_get', text: `select ${TASK_COLUMNS} from api.get_task($1)`, values: [id] };
  },
  create(title: string, description: string | null, completed: boolean): Statement {
    return {
      name: 'task_api_create',
      text: `select ${TASK_COLUMNS} from api.create_task($1, $2, $3)`,
      values: [title, description, completed],
    };
  },
  /** POST with an Idempotency-Key: the task's columns, then whether it is a replay. */
  createIdempotent(key: string, request: TaskInput): Statement {
    return {
      name: 'task_api_create_idempotent',
      text:
        `select ${TASK_COLUMNS.split(', ').map((column) => `t.${column}`).join(', ')}, r.replayed ` +
        'from api.create_task_idempotent($1, $2) r ' +
        'cross join lateral jsonb_populate_record(null::api.tasks, r.task) t',
      values: [key, JSON.stringify(request)],
    };
  },
  replace(id: string, title: string, description: string | null, completed: boolean, ifMatch: IfMatch): Statement {
    return {
      name: 'task_api_replace',
      text: `select ${TASK_COLUMNS} from api.replace_task($1, $2, $3, $4, $5)`,
      values: [id, title, description, completed, ifMatch],
    };
  },
  update(id: string, changes: Record<string, unknown>, ifMatch: IfMatch): Statement {
    return {
      name: 'task_api_update',
      text: `select ${TASK_COLUMNS} from api.update_task($1, $2, $3)`,
      values: [id, JSON.stringify(changes), ifMatch],
    };
  },
  toggle(id: string, ifMatch: IfMatch): Statement {
    return { name: 'task_api_toggle', text: `select ${TASK_COLUMNS} from api.toggle_task($1, $2)`, values: [id, ifMatch] };
  },
  setCompleted(id: string, completed: boolean, ifMatch: IfMatch): Statement {
    return {
      name: 'task_api_set_completed',
      text: `select ${TASK_COLUMNS} from api.set_task_completed($1, $2, $3)`,
      values: [id, completed, ifMatch],
    };
  },
  delete(id: string, ifMatch: IfMatch): Statement {
    return { name: 'task_api_delete', text: `select ${TASK_COLUMNS} from api.delete_task($1, $2)`, values: [id, ifMatch] };
  },
};
