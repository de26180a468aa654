// Writes that are safe to retry from their first attempt, and the retries.
//
// A 503 comes in two kinds (see the README's failure table):
//   /problems/unavailable      nothing was changed: any request may be retried;
//   /problems/outcome-unknown  a write was sent and its answer lost: it may
//                              have been applied (never later than the 503).
// A write can only be retried safely after "outcome unknown" if its first
// attempt already carried an Idempotency-Key (create) or an If-Match (every
// other write). So, unless the caller set them, every POST gets a fresh
// Idempotency-Key, and every PUT/PATCH/DELETE an If-Match with the last ETag
// this client saw for that task. A retry then cannot apply twice: a create
// is replayed (Idempotent-Replayed: true), and any other write that already
// landed answers 412 (or 404 for a delete) — re-read the task.
export interface SafeRetryOptions {
  /** Attempts in all, the first included (default 3; 1 disables retries). */
  attempts?: number;
  /** Longest wait between attempts, whatever Retry-After says (default 5 s). */
  maxDelayMs?: number;
  /** Add If-Match from the ETags this client has seen (default true). */
  ifMatchFromLastEtag?: boolean;
}

type Fetch = (input: Request) => Promise<Response>;

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** /api/tasks/{id} or /api/{user}/tasks/{id}, from a request URL or a Location header. */
function taskPath(url: string): string | undefined {
  return /^(?:https?:\/\/[^/]+)?(\/api\/(?:[^/]+\/)?tasks\/[^/?#]+)/.exec(url)?.[1];
}

async function problemType(response: Response): Promise<string | undefined> {
  if (!response.headers.get('content-type')?.includes('application/problem+json')) return undefined;
  try {
    return ((await response.clone().json()) as { type?: string }).type;
  } catch {
    return undefined;
  }
}

export function safeRetryingFetch(fetchImpl: Fetch, options: SafeRetryOptions = {}): Fetch {
  const attempts = Math.max(1, options.attempts ?? 3);
  const maxDelayMs = options.maxDelayMs ?? 5_000;
  const etags = new Map<string, string>();

  return async (request) => {
    const path = taskPath(request.url);
    if (request.method === 'POST' && !request.headers.has('Idempotency-Key')) {
      request.headers.set('Idempotency-Key', crypto.randomUUID());
    }
    if (options.ifMatchFromLastEtag !== false && WRITES.has(request.method) && request.method !== 'POST' && path) {
      const known = etags.get(path);
      if (known && !request.headers.has('If-Match')) request.headers.set('If-Match', known);
    }
    const repeatable =
      !WRITES.has(request.method) || request.headers.has('Idempotency-Key') || request.headers.has('If-Match');

    for (let attempt = 1; ; attempt++) {
      const response = await fetchImpl(attempt < attempts ? request.clone() : request);
      const etag = response.headers.get('ETag');
      const location = response.headers.get('Location');
      const about = location ? taskPath(location) : path;
      if (etag && about) etags.set(about, etag);
      if (request.method === 'DELETE' && path && response.status === 204) etags.delete(path);

      if (response.status !== 503 || attempt >= attempts) return response;
      const type = await problemType(response);
      const retry = type === '/problems/unavailable' || (type === '/problems/outcome-unknown' && repeatable);
      if (!retry) return response;
      const retryAfter = Number(response.headers.get('Retry-After') ?? 'none');
      const delay = Math.min(maxDelayMs, Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : 1000);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  };
}
