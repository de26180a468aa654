// Collects the rows of the list statement (taskQueries.list): first one row
// carrying the user's list version (task columns null, version last), then
// the tasks, rendered by TaskListJson. With a page size, the statement asks
// for one task more than the page holds: that task is not rendered; it tells
// that a next page exists, and where it starts.
import type { RawDataRow } from './raw-row-client.js';
import { TaskListJson } from './task-json-bytes.js';
import type { RowCollector } from './transaction-pipeline.js';

export interface TaskListPage {
  /** The user's list version, for the ETag. */
  version: string;
  /** The JSON array of the page's tasks. */
  body: Buffer;
  /** The first task of the next page, when there is one. */
  next?: { id: string; title: string; createdAt: string };
}

export class TaskListPageCollector implements RowCollector<TaskListPage> {
  private readonly tasks = new TaskListJson();
  private version?: string;
  private count = 0;
  private next?: TaskListPage['next'];

  /** limit: the page size; undefined for the whole list. */
  constructor(private readonly limit?: number) {}

  add(row: RawDataRow): void {
    if (this.version === undefined) {
      this.version = row.fields[7] ?? '0';
    } else if (this.count === this.limit) {
      const [id, , title, , , createdAt] = row.fields;
      this.next = { id: id!, title: title!, createdAt: createdAt! };
    } else {
      this.count += 1;
      this.tasks.add(row);
    }
  }

  finish(): TaskListPage {
    if (this.version === undefined) throw new Error('the list statement returned no version row');
    return { version: this.version, body: this.tasks.finish(), ...(this.next ? { next: this.next } : {}) };
  }
}
