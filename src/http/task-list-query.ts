// GET /tasks query parameters as the list statement takes them: the filter,
// the order, the page size and where the page starts; plus the pieces of the
// response that depend on them: the opaque cursor of the next page and the
// list's ETag.
//
// A cursor is the position of the next page's first task, encrypted and
// authenticated (AES-256-GCM) with the caller and the query as associated
// data: opaque to clients (no titles in URLs), and any change, or use by
// another user or with another status or sort, fails authentication (422).
// The key is derived from a secret every replica shares, so a cursor issued
// by one works on the others.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { invalidRequest } from './problem.js';

export const LIST_STATUSES = ['all', 'pending', 'completed'] as const;
export const LIST_SORTS = ['created', 'title'] as const;
export const LIST_LIMIT_MAX = 1000;

export type ListStatus = (typeof LIST_STATUSES)[number];
export type ListSort = (typeof LIST_SORTS)[number];

/** Where a page starts (inclusive): the sort key of its first task. */
export interface ListPosition {
  /** created_at as PostgreSQL sent it. */
  createdAt: string;
  id: string;
  /** The stored title; only for sort=title. */
  title?: string;
}

export interface ListQuery {
  status: ListStatus;
  sort: ListSort;
  limit?: number;
  after?: ListPosition;
  /** The cursor as the client sent it (part of the ETag). */
  cursor?: string;
}

/** Query parameters after schema validation (src/http/routes/task-route-schemas.ts). */
export interface ListQueryParams {
  status?: ListStatus;
  sort?: ListSort;
  limit?: number;
  cursor?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class ListCursors {
  private readonly key: Buffer;

  /** secret: shared by every replica (CURSOR_SECRET, else JWT_SECRET); absent, cursors work only on this process. */
  constructor(secret: string | undefined) {
    const material = secret === undefined ? randomBytes(32) : Buffer.from(secret);
    this.key = Buffer.from(hkdfSync('sha256', material, 'task-api', 'list cursor v1', 32));
  }

  /** The validated parameters and the caller as the list statement needs them; a bad cursor is 422. */
  parse(params: ListQueryParams, sub: string): ListQuery {
    const query: ListQuery = { status: params.status ?? 'all', sort: params.sort ?? 'created', limit: params.limit };
    if (params.cursor !== undefined) {
      if (params.limit === undefined) throw invalidRequest([{ field: 'cursor', reason: 'is valid only with limit' }]);
      query.cursor = params.cursor;
      query.after = this.open(params.cursor, sub, query);
    }
    return query;
  }

  /** The cursor of the page that starts at `next`. */
  issue(next: ListPosition, sub: string, query: ListQuery): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(associatedData(sub, query));
    const payload = JSON.stringify(query.sort === 'title' ? [next.createdAt, next.id, next.title] : [next.createdAt, next.id]);
    const sealed = Buffer.concat([iv, cipher.update(payload, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return sealed.toString('base64url');
  }

  private open(cursor: string, sub: string, query: ListQuery): ListPosition {
    const invalid = invalidRequest([
      { field: 'cursor', reason: 'is not a cursor of this list (it was changed, or belongs to another query or user)' },
    ]);
    const sealed = Buffer.from(cursor, 'base64url');
    if (sealed.length <= IV_BYTES + TAG_BYTES || sealed.toString('base64url') !== cursor) throw invalid;
    let payload: unknown;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, sealed.subarray(0, IV_BYTES));
      decipher.setAAD(associatedData(sub, query));
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
      payload = JSON.parse(plain.toString('utf8'));
    } catch {
      throw invalid;
    }
    // Authentic, so made by issue(); checked anyway, as the values reach SQL.
    const [createdAt, id, title] = Array.isArray(payload) ? payload : [];
    if (typeof createdAt !== 'string' || typeof id !== 'string' || !UUID.test(id)) throw invalid;
    if (query.sort === 'title' && typeof title !== 'string') throw invalid;
    return { createdAt, id, ...(typeof title === 'string' ? { title } : {}) };
  }
}

/** A cursor belongs to one user and one status and sort (the page size may change between pages). */
function associatedData(sub: string, query: Pick<ListQuery, 'status' | 'sort'>): Buffer {
  return Buffer.from(`${sub}\n${query.status}\n${query.sort}`);
}

/**
 * The list's ETag: its version (a per-user counter in PostgreSQL that every
 * write of the user's tasks moves) and a tag of the caller and the query, so
 * the same version of another user's list, or of another filter or page,
 * never matches.
 */
export function listEtag(version: string, sub: string, query: ListQuery): string {
  return `"${version}-${listTag(sub, query)}"`;
}

function listTag(sub: string, query: ListQuery): string {
  const parts = [sub, query.status, query.sort, query.limit ?? '', query.cursor ?? ''].join('\n');
  return createHash('sha256').update(parts).digest('base64url').slice(0, 16);
}

/**
 * The list versions an If-None-Match header names for this caller and query
 * (weak or strong: RFC 9110 compares weakly here). Entries for another user or
 * query are ignored, so they never produce a 304.
 */
export function knownListVersions(header: string | string[] | undefined, sub: string, query: ListQuery): string[] {
  if (header === undefined) return [];
  const tag = listTag(sub, query);
  const versions: string[] = [];
  for (const entry of [header].flat().join(',').split(',')) {
    const match = /^(?:W\/)?"(\d{1,18})-([A-Za-z0-9_-]{16})"$/.exec(entry.trim());
    if (match && match[2] === tag) versions.push(match[1]);
  }
  return versions;
}

/** The URL of the next page: this request's path and query with the new cursor. */
export function nextPageUrl(path: string, query: ListQuery, cursor: string): string {
  const params = new URLSearchParams();
  if (query.status !== 'all') params.set('status', query.status);
  if (query.sort !== 'created') params.set('sort', query.sort);
  if (query.limit !== undefined) params.set('limit', String(query.limit));
  params.set('cursor', cursor);
  return `${path}?${params}`;
}
