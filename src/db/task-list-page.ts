// Collects the rows of the list statement (taskQueries.list) as they stream:
// first one row carrying the user's list version (and, for a page, where the
// next page starts), then the tasks, rendered in pieces by TaskListJson. Both
// the version and the next page are known from the first row, so the ETag and
// Link headers go out before the body streams.
import type { RawDataRow } from './raw-row-client.js';
import type { ChunkedCollector } from './row-stream.js';
import { TaskListJson } from './task-json-bytes.js';

export interface NextPageStart {
  id: string;
  title: string;
  createdAt: string;
}

export class TaskListPageCollector implements ChunkedCollector {
  private readonly tasks = new TaskListJson();
  private versionRow?: { version: string; next?: NextPageStart };

  add(row: RawDataRow): void {
    if (this.versionRow) return this.tasks.add(row);
    const [id, , title, , , createdAt, , version] = row.fields;
    this.versionRow = { version: version ?? '0', ...(id ? { next: { id, title: title!, createdAt: createdAt! } } : {}) };
  }

  /** The user's list version, for the ETag (known once the stream has started). */
  get version(): string {
    if (!this.versionRow) throw new Error('the list statement returned no version row');
    return this.versionRow.version;
  }

  /** The first task of the next page, when there is one. */
  get next(): NextPageStart | undefined {
    return this.versionRow?.next;
  }

  take(): Buffer {
    return this.tasks.take();
  }

  get pending(): number {
    return this.tasks.pending;
  }

  finish(): Buffer {
    if (!this.versionRow) throw new Error('the list statement returned no version row');
    return this.tasks.finish();
  }
}
