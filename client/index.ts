// A small typed client for the Task API on openapi-fetch: every path, body,
// header and response comes from client/schema.d.ts, generated from the API's
// OpenAPI document (`npm run client:generate`).
//
//   const api = createTaskClient({ baseUrl: 'https://api.example.com', getToken });
//   const { data, error } = await api.POST('/api/tasks', { body: { title: 'Buy milk' } });
//   // data: Task on 2xx; error: Problem (application/problem+json) otherwise
import createClient, { type Client, type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema.js';
import { safeRetryingFetch, type SafeRetryOptions } from './safe-retries.js';

export type { components, paths } from './schema.js';
export { safeRetryingFetch, type SafeRetryOptions } from './safe-retries.js';
export type Task = components['schemas']['Task'];
export type Problem = components['schemas']['Problem'];
export type CreateTask = components['schemas']['CreateTask'];
export type ReplaceTask = components['schemas']['ReplaceTask'];
export type UpdateTask = components['schemas']['UpdateTask'];

export type TaskClient = Client<paths>;

export interface TaskClientOptions {
  /** Where the gateway listens, e.g. https://api.example.com (no trailing /api). */
  baseUrl: string;
  /**
   * The bearer token for the current user: with Better Auth, the JWT from
   * `authClient.token()` (browser) or `auth.api.getToken()` (server). Called
   * before every request, so it can return a refreshed token; return
   * undefined/null to send the request without Authorization (a 401 follows).
   */
  getToken: () => string | null | undefined | Promise<string | null | undefined>;
  /** A fetch to use instead of globalThis.fetch (tests, or Next.js' extended fetch). */
  fetch?: (input: Request) => Promise<Response>;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /**
   * Idempotency-Key / If-Match on the first attempt of every write, and
   * retries of 503s that are safe to retry (client/safe-retries.ts). On by
   * default; false sends every request exactly as given, once.
   */
  retries?: SafeRetryOptions | false;
}

/** The middleware that sends `Authorization: Bearer <token>` on every request. */
export function bearerAuth(getToken: TaskClientOptions['getToken']): Middleware {
  return {
    async onRequest({ request }) {
      const token = await getToken();
      if (token) request.headers.set('Authorization', `Bearer ${token}`);
      return request;
    },
  };
}

export function createTaskClient(options: TaskClientOptions): TaskClient {
  const fetch =
    options.retries === false
      ? options.fetch
      : safeRetryingFetch(options.fetch ?? ((request) => globalThis.fetch(request)), options.retries);
  const client = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ''),
    ...(fetch ? { fetch } : {}),
    ...(options.headers ? { headers: options.headers } : {}),
  });
  client.use(bearerAuth(options.getToken));
  return client;
}

/** The ETag of a response, to send back as If-Match on the next write. */
export function etagOf(response: Response): string | undefined {
  return response.headers.get('ETag') ?? undefined;
}

/**
 * The cursor of the next page from a list response's Link header, or
 * undefined on the last page (or when the list was not paged):
 *   const { data, response } = await api.GET('/api/tasks', { params: { query: { limit: 50 } } });
 *   const cursor = nextPageCursor(response); // pass as query.cursor, with the same status and sort
 */
export function nextPageCursor(response: Response): string | undefined {
  const link = response.headers.get('Link');
  const match = link ? /<([^>]+)>;\s*rel="next"/.exec(link) : null;
  return match ? (new URL(match[1], 'http://relative').searchParams.get('cursor') ?? undefined) : undefined;
}
