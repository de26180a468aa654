// A real browser as a frontend's client: Debian's chromium, headless, driven
// by playwright-core (no browser download). A page served from another origin
// (a tiny static server on another port) gets a token from that server, then
// runs list, create, toggle, PUT and delete through the browser's own fetch
// with CORS, sending Content-Type: application/json on every request as the
// frontends' wrappers do. A second list request is then revalidated by the
// browser's HTTP cache: the gateway's access log shows the 304.
//
// Skipped, saying so, only when /usr/bin/chromium is missing; CI installs it
// and sets REQUIRE_CHROMIUM=1, which turns its absence into a failure.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, newUser, tokenFor, type TestApp } from './support/http.js';

const CHROMIUM = '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available) {
  if (process.env.REQUIRE_CHROMIUM === '1') throw new Error(`${CHROMIUM} is missing and REQUIRE_CHROMIUM=1: install Debian's chromium`);
  console.warn(`tests/ecosystem-browser.test.ts skipped: ${CHROMIUM} is missing (apt-get install chromium)`);
}

/** The frontend page: a fetch wrapper like the ones real frontends have, and the flow it runs. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>Task API browser check</title>
<script>
  let token;
  async function api(base, path, options = {}) {
    const response = await fetch(base + path, {
      method: options.method || 'GET',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const text = await response.text();
    return { status: response.status, etag: response.headers.get('ETag'), link: response.headers.get('Link'), body: text ? JSON.parse(text) : null };
  }
  window.runFlow = async (base) => {
    token = (await (await fetch('/token')).json()).token;
    const steps = {};
    steps.emptyList = await api(base, '/api/tasks');
    steps.created = await api(base, '/api/tasks', { method: 'POST', body: { title: 'From the browser', description: 'via CORS' } });
    const id = steps.created.body.id;
    steps.toggledEmptyObject = await api(base, '/api/tasks/' + id + '/complete', { method: 'PATCH', body: {} });
    steps.toggledNoBody = await api(base, '/api/tasks/' + id + '/complete', { method: 'PATCH' });
    steps.put = await api(base, '/api/tasks/' + id, { method: 'PUT', body: { title: 'Edited in the browser', description: null } });
    steps.second = await api(base, '/api/tasks', { method: 'POST', body: { title: 'Second' } });
    steps.page = await api(base, '/api/tasks?limit=1&sort=title');
    steps.deleted = await api(base, '/api/tasks/' + steps.second.body.id, { method: 'DELETE' });
    steps.listed = await api(base, '/api/tasks');
    steps.listedAgain = await api(base, '/api/tasks');
    return steps;
  };
</script>`;

let t: TestApp;
let pageServer: Server;
let context: BrowserContext;
let profileDir: string;
let pageOrigin: string;
let apiBase: string;
const sub = newUser('browser');

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

describe.skipIf(!available)('a real browser on another origin', () => {
  beforeAll(async () => {
    pageServer = createServer(async (request, response) => {
      if (request.url === '/token') {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: await tokenFor(sub) }));
      } else if (request.url === '/') {
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
      } else {
        response.writeHead(404).end();
      }
    });
    pageOrigin = `http://127.0.0.1:${await listen(pageServer)}`;

    t = await createTestApp({ corsOrigins: [pageOrigin] });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    apiBase = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;

    profileDir = await mkdtemp(path.join(tmpdir(), 'task-api-chromium-'));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await t?.close();
    await new Promise((resolve) => pageServer?.close(resolve));
    if (profileDir) await rm(profileDir, { recursive: true, force: true });
  });

  it('runs list, create, toggle, PUT and delete through fetch with CORS, and revalidates the list with a 304', async () => {
    const page = await context.newPage();
    await page.goto(`${pageOrigin}/`);
    const steps = await page.evaluate((base) => (window as unknown as { runFlow(base: string): Promise<any> }).runFlow(base), apiBase);

    expect(steps.emptyList).toMatchObject({ status: 200, body: [] });
    expect(steps.created).toMatchObject({ status: 201, body: { title: 'From the browser', completed: false, user_id: sub } });
    expect(steps.created.etag).toMatch(/^"\d+"$/); // exposed to the page
    expect(steps.toggledEmptyObject).toMatchObject({ status: 200, body: { completed: true } });
    expect(steps.toggledNoBody).toMatchObject({ status: 200, body: { completed: false } });
    expect(steps.put).toMatchObject({ status: 200, body: { title: 'Edited in the browser', description: null, completed: false } });
    expect(steps.page.status).toBe(200);
    expect(steps.page.body).toHaveLength(1);
    expect(steps.page.link).toMatch(/^<\/api\/tasks\?sort=title&limit=1&cursor=[^>]+>; rel="next"$/);
    expect(steps.deleted).toMatchObject({ status: 204, body: null });

    // The page sees 200 and the list both times; the second came from the
    // browser's cache after the gateway answered its revalidation with 304.
    const expected = [{ ...steps.put.body }];
    expect(steps.listed).toMatchObject({ status: 200, body: expected });
    expect(steps.listedAgain).toMatchObject({ status: 200, body: expected, etag: steps.listed.etag });

    const listRequests = t.logs
      .filter((line) => line.msg === 'request completed')
      .map((line) => ({ ...(line.req as { method: string; url: string }), status: (line.res as { statusCode: number }).statusCode }))
      .filter((request) => request.method === 'GET' && request.url === '/api/tasks');
    // The empty list, the title page (the log leaves query strings out), the
    // list, and the same list revalidated: 304, no body sent.
    expect(listRequests.map((request) => request.status)).toEqual([200, 200, 200, 304]);
    await page.close();
  }, 60_000);
});
