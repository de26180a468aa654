// The SQL the gateway sends for each task operation. Each is one call into
// the api schema; row-level security and the functions decide the outcome.
import type { Statement } from './request-transaction.js';
import { TASK_COLUMNS, type RawTaskRow } from './task-json.js';
import type { ListQuery } from '../http/task-list-query.js';

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
  /**
   * GET /tasks: one row with the caller's list version, then the tasks (see
   * listStatement), unless the version is one of knownVersions (If-None-Match):
   * then the version row alone, and the tasks are never read.
   */
  list(query: ListQuery, knownVersions: string[]): Statement {
    return listStatement(query, knownVersions);
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
  /** PATCH, and PUT (whose title is always present): fields left out keep their values. */
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

const COLUMN_LIST = TASK_COLUMNS.split(', ');
/** The version row: the task columns null, the list version in the last one. */
const VERSION_ROW = `select ${COLUMN_LIST.slice(0, -1).map(() => 'null').join(', ')}, version from list_version`;

/**
 * The list statement for one shape of query, each its own prepared
 * statement. The whole list (no limit) is one range scan of an index in the
 * order asked for (tasks_user_id_*_idx). A page is api.list_tasks_page(),
 * which plans each page as a range scan that starts at the cursor's position
 * (inclusive) and stops after the page: keyset pages, never OFFSET.
 *
 * The version row comes first: api.task_list_version() is not parallel safe,
 * so the statement never runs in parallel, and a UNION ALL then returns its
 * branches in order. For a page it also carries the first task of the next
 * page (id, title, created_at in their columns; null when the page is the
 * last), read in the same snapshot, so the Link header is known before the
 * page's rows stream. When the version is one the client already holds ($1,
 * from If-None-Match), the one-time filter skips the tasks entirely.
 */
function listStatement(query: ListQuery, knownVersions: string[]): Statement {
  const values: unknown[] = [knownVersions];
  const param = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  const unchanged = '(select version from list_version) <> all ($1::bigint[])';
  const completed = query.status === 'all' ? null : query.status === 'completed';

  let versionRow = VERSION_ROW;
  let tasks: string;
  if (query.limit === undefined) {
    const filter = completed === null ? '' : ` and completed = ${param(completed)}::boolean`;
    const order = query.sort === 'title' ? 'title_sort_key, created_at desc, id desc' : 'created_at desc, id desc';
    tasks = `select ${TASK_COLUMNS} from api.tasks where ${unchanged}${filter} order by ${order}`;
  } else {
    const after = query.after;
    const limit = param(query.limit);
    const sortAndStatus = `${param(query.sort)}::text, ${param(completed)}::boolean`;
    const position = after ? `, ${param(after.createdAt)}::timestamptz, ${param(after.id)}::uuid, ${param(after.title ?? null)}::text` : '';
    const pageFrom = (size: string) => `api.list_tasks_page(${sortAndStatus}, ${size}${position})`;
    tasks = `select ${TASK_COLUMNS} from ${pageFrom(`${limit}::int`)} where ${unchanged}`;
    versionRow =
      'select next.id, null, next.title, null, null, next.created_at, null, version from list_version ' +
      `left join lateral (select id, title, created_at from ${pageFrom(`${limit}::int + 1`)} offset ${limit}::int) next on ${unchanged}`;
  }

  const shape = [query.limit === undefined ? 'whole' : 'page', query.limit === undefined && query.status !== 'all' ? 'status' : '', query.limit === undefined ? query.sort : '', query.after ? 'after' : ''];
  return {
    name: `task_api_list_${shape.filter(Boolean).join('_')}`,
    text: `with list_version as materialized (select api.task_list_version() as version) ${versionRow} union all (${tasks})`,
    values,
  };
}
