// CORS details a browser frontend depends on: the headers it may read
// (Allow, Link and ETag among them), the request headers it may send
// (If-None-Match), and OPTIONS that is not a preflight answered like every
// other method a path does not serve: 405 problem+json with Allow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createTestApp, expectProblem, newUser, tokenFor, type TestApp } from './support/http.js';

const ORIGIN = 'https://app.example.com';
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ corsOrigins: [ORIGIN] });
});
afterAll(() => t.close());

describe('CORS', () => {
  it('exposes Allow, Link and ETag to the page, and lets it send If-None-Match', async () => {
    const headers = { ...bearer(await tokenFor(newUser('cors'))), origin: ORIGIN };
    const response = await t.app.inject({ url: '/api/tasks?limit=1', headers });
    expect(response.statusCode).toBe(200);
    const exposed = String(response.headers['access-control-expose-headers']).toLowerCase().split(/,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(['allow', 'link', 'etag', 'location']));
    // A browser keeps one copy per origin and per token.
    const vary = String(response.headers.vary).toLowerCase().split(/,\s*/);
    expect(vary).toEqual(expect.arrayContaining(['origin', 'authorization']));

    const preflight = await t.app.inject({
      method: 'OPTIONS',
      url: '/api/tasks',
      headers: { origin: ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization,if-none-match' },
    });
    expect(preflight.statusCode).toBe(204);
    expect(String(preflight.headers['access-control-allow-headers']).toLowerCase()).toContain('if-none-match');
  });

  it.each([
    ['/api/tasks', ['GET', 'POST'], {}],
    ['/api/tasks/00000000-0000-4000-8000-000000000000', ['GET', 'PUT', 'PATCH', 'DELETE'], {}],
    ['/api/tasks/00000000-0000-4000-8000-000000000000/complete', ['PATCH'], { origin: ORIGIN }],
  ])('OPTIONS %s that is not a preflight is 405 problem+json with Allow', async (url, served, extra) => {
    const headers = { ...bearer(await tokenFor(newUser('cors'))), ...extra };
    const response = await t.app.inject({ method: 'OPTIONS', url, headers });
    const problem = expectProblem(response, 405, '/problems/method-not-allowed');
    expect(problem.detail).toMatch(/serves/);
    const allow = String(response.headers.allow).split(/,\s*/).filter((method) => method !== 'HEAD');
    expect(allow.sort()).toEqual([...served].sort());
  });

  it('a non-preflight OPTIONS of an unknown path is 404 problem+json', async () => {
    const response = await t.app.inject({ method: 'OPTIONS', url: '/nowhere' });
    expectProblem(response, 404, '/problems/not-found');
  });
});
