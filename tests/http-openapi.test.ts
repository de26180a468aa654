// GET /openapi.json describes every route of both families, their bodies,
// success responses and errors; GET /docs serves the interactive reference.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './support/http.js';

type Json = Record<string, any>;

let t: TestApp;
let doc: Json;
beforeAll(async () => {
  t = await createTestApp();
  const response = await t.app.inject({ method: 'GET', url: '/openapi.json' });
  expect(response.statusCode).toBe(200);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  doc = response.json();
});
afterAll(() => t.close());

/** Follows local $refs (#/components/...) until a schema without one. */
function resolve(node: Json | undefined): Json {
  let current = node;
  for (let depth = 0; current && typeof current.$ref === 'string'; depth++) {
    expect(depth, 'a $ref cycle').toBeLessThan(10);
    const ref: string = current.$ref;
    expect(ref, `only local refs are resolvable: ${ref}`).toMatch(/^#\//);
    current = ref
      .slice(2)
      .split('/')
      .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce<Json | undefined>((at, part) => at?.[part], doc);
    expect(current, `unresolvable $ref ${ref}`).toBeDefined();
  }
  return current as Json;
}

const FAMILIES = ['/api/tasks', '/api/{user_id}/tasks'];
const ROUTES: { path: string; methods: string[] }[] = [
  { path: '', methods: ['get', 'post'] },
  { path: '/{id}', methods: ['get', 'put', 'patch', 'delete'] },
  { path: '/{id}/complete', methods: ['patch'] },
];

type Operation = {
  family: string;
  path: string;
  method: string;
  kind: 'list' | 'create' | 'get' | 'replace' | 'update' | 'delete' | 'complete';
};

const OPERATIONS: Operation[] = FAMILIES.flatMap((family) => [
  { family, path: family, method: 'get', kind: 'list' as const },
  { family, path: family, method: 'post', kind: 'create' as const },
  { family, path: `${family}/{id}`, method: 'get', kind: 'get' as const },
  { family, path: `${family}/{id}`, method: 'put', kind: 'replace' as const },
  { family, path: `${family}/{id}`, method: 'patch', kind: 'update' as const },
  { family, path: `${family}/{id}`, method: 'delete', kind: 'delete' as const },
  { family, path: `${family}/{id}/complete`, method: 'patch', kind: 'complete' as const },
]);
const BODY_KINDS = ['create', 'replace', 'update', 'complete'];
const ID_KINDS = ['get', 'replace', 'update', 'delete', 'complete'];
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

const op = (o: Operation): Json => doc.paths?.[o.path]?.[o.method];

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.1 document with info', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
  });

  it('lists every route of both families with exactly the methods it serves', () => {
    for (const family of FAMILIES) {
      for (const route of ROUTES) {
        const item = doc.paths?.[family + route.path];
        expect(item, `${family + route.path} is missing`).toBeDefined();
        const methods = Object.keys(item).filter((key) => HTTP_METHODS.includes(key));
        expect(methods.sort(), family + route.path).toEqual([...route.methods].sort());
      }
    }
  });

  it('lists the health routes', () => {
    expect(doc.paths['/health/live']?.get).toBeDefined();
    expect(doc.paths['/health/ready']?.get).toBeDefined();
    expect(Object.keys(doc.paths['/health/ready'].get.responses)).toEqual(expect.arrayContaining(['200', '503']));
  });

  it('declares the bearer security scheme and requires it on every task operation', () => {
    const schemes: Json = doc.components?.securitySchemes ?? {};
    const bearerNames = Object.entries(schemes)
      .filter(([, scheme]) => scheme.type === 'http' && String(scheme.scheme).toLowerCase() === 'bearer')
      .map(([name]) => name);
    expect(bearerNames.length).toBeGreaterThan(0);
    for (const o of OPERATIONS) {
      const security: Json[] = op(o).security ?? doc.security ?? [];
      const names = security.flatMap((requirement) => Object.keys(requirement));
      expect(names.some((name) => bearerNames.includes(name)), `${o.method} ${o.path}`).toBe(true);
    }
  });

  it('declares the Task schema as the API returns it', () => {
    const task = resolve(doc.components?.schemas?.Task);
    expect([...task.required].sort()).toEqual(['completed', 'created_at', 'description', 'id', 'title', 'updated_at', 'user_id']);
    expect(task.properties.id).toMatchObject({ type: 'string', format: 'uuid' });
    expect(task.properties.user_id.type).toBe('string');
    expect(task.properties.title.type).toBe('string');
    expect([task.properties.description.type].flat().sort()).toEqual(['null', 'string']);
    expect(task.properties.completed.type).toBe('boolean');
    expect(task.properties.created_at).toMatchObject({ type: 'string', format: 'date-time' });
    expect(task.properties.updated_at).toMatchObject({ type: 'string', format: 'date-time' });
  });

  describe.each(OPERATIONS.filter((o) => BODY_KINDS.includes(o.kind)))('$method $path request body', (o) => {
    it('is a JSON schema with the task fields and additionalProperties false', () => {
      const body = op(o).requestBody;
      expect(body).toBeDefined();
      const schema = resolve(body.content?.['application/json']?.schema);
      expect(schema.additionalProperties).toBe(false);
      // Plus the read-only fields a client may send back unchanged (accepted when they agree, ignored).
      const sentBack = o.kind === 'create' ? ['user_id'] : ['created_at', 'id', 'updated_at', 'user_id'];
      const fields = o.kind === 'complete' ? ['completed'] : ['completed', 'description', 'title'];
      expect(Object.keys(schema.properties).sort()).toEqual([...fields, ...sentBack].sort());
      const props = Object.fromEntries(Object.entries<Json>(schema.properties).map(([key, value]) => [key, resolve(value)]));
      expect(props.completed.type).toBe('boolean');
      if (o.kind !== 'complete') {
        expect(props.title).toMatchObject({ type: 'string', minLength: 1, maxLength: 255 });
        expect([props.description.type].flat().sort()).toEqual(['null', 'string']);
        expect(props.description.maxLength).toBe(10_000);
      }
      const required = [...(schema.required ?? [])].sort();
      if (o.kind === 'create') expect(required).toEqual(['title']);
      if (o.kind === 'replace') expect(required).toEqual(['title']);
      if (o.kind === 'update') {
        expect(required).toEqual([]);
        expect(schema.minProperties).toBe(1);
      }
      if (o.kind === 'complete') expect(required).toEqual([]);
    });

    if (o.kind === 'complete') {
      // @fastify/swagger marks every body required; the app marks this one optional.
      it('is optional: no body flips completed', () => {
        expect(op(o).requestBody.required ?? false).toBe(false);
      });
    } else {
      it('is required', () => {
        expect(op(o).requestBody.required).toBe(true);
      });
    }
  });

  it('documents no request body for GET and DELETE', () => {
    for (const o of OPERATIONS.filter((x) => !BODY_KINDS.includes(x.kind))) {
      expect(op(o).requestBody, `${o.method} ${o.path}`).toBeUndefined();
    }
  });

  describe.each(OPERATIONS)('$method $path responses', (o) => {
    it('document the success response with the Task schema', () => {
      const responses: Json = op(o).responses;
      const success = { list: '200', create: '201', get: '200', replace: '200', update: '200', delete: '204', complete: '200' }[o.kind];
      const successCodes = Object.keys(responses).filter((code) => code.startsWith('2'));
      expect(successCodes).toEqual([success]);
      const response = responses[success];
      expect(response.description).toEqual(expect.any(String));
      if (o.kind === 'delete') {
        expect(response.content).toBeUndefined();
        return;
      }
      const schema = resolve(response.content?.['application/json']?.schema);
      const task = resolve(doc.components.schemas.Task);
      if (o.kind === 'list') {
        expect(schema.type).toBe('array');
        expect(resolve(schema.items)).toEqual(task);
      } else {
        expect(schema).toEqual(task);
      }
    });

    it('document each error as application/problem+json with the Problem schema', () => {
      const responses: Json = op(o).responses;
      const expected = ['401', '403', '503'];
      if (ID_KINDS.includes(o.kind)) expected.push('404');
      if (BODY_KINDS.includes(o.kind)) expected.push('400', '413', '415', '422');
      if (['replace', 'update', 'delete', 'complete'].includes(o.kind)) expected.push('412');
      expect(Object.keys(responses)).toEqual(expect.arrayContaining(expected));
      for (const code of Object.keys(responses).filter((c) => /^[45]/.test(c))) {
        const response = responses[code];
        expect(response.description, code).toEqual(expect.any(String));
        expect(Object.keys(response.content ?? {}), code).toEqual(['application/problem+json']);
        const problem = resolve(response.content['application/problem+json'].schema);
        expect([...problem.required].sort(), code).toEqual(['detail', 'status', 'title', 'type']);
        expect(Object.keys(problem.properties)).toEqual(expect.arrayContaining(['type', 'title', 'status', 'detail', 'errors']));
      }
    });

    if (o.kind !== 'delete' && o.kind !== 'list') {
      it('document the ETag header (and Location on 201) with a string schema', () => {
        const success = op(o).responses[o.kind === 'create' ? '201' : '200'];
        const names = o.kind === 'create' ? ['ETag', 'Location'] : ['ETag'];
        for (const name of names) {
          expect(success.headers?.[name]?.schema, name).toEqual({ type: 'string' });
        }
      });
    }
  });

  describe.each(OPERATIONS)('$method $path parameters', (o) => {
    const inPath = (o.path.match(/\{[^}]+\}/g) ?? []).map((p) => p.slice(1, -1));
    const pathParams = () => (op(o).parameters ?? []).filter((p: Json) => p.in === 'path').map((p: Json) => p.name as string);

    it(`declare every path template parameter (${inPath.join(', ') || 'none'}) as required`, () => {
      for (const name of inPath) {
        const parameter = (op(o).parameters ?? []).find((p: Json) => p.in === 'path' && p.name === name);
        expect(parameter, `${name} of ${o.path}`).toBeDefined();
        expect(parameter.required).toBe(true);
      }
    });

    it('declare no path parameter that is not in the path', () => {
      expect(pathParams().sort()).toEqual([...inPath].sort());
    });
  });

  it('hides the 405 catch-all routes (no operation answers only 405)', () => {
    for (const item of Object.values<Json>(doc.paths)) {
      for (const [method, operation] of Object.entries<Json>(item)) {
        if (!HTTP_METHODS.includes(method)) continue;
        expect(Object.keys(operation.responses).some((code) => code.startsWith('2')), method).toBe(true);
      }
    }
  });
});

describe('GET /docs', () => {
  it('answers with the interactive reference as HTML (following a redirect if any)', async () => {
    let response = await t.app.inject({ method: 'GET', url: '/docs' });
    for (let hops = 0; [301, 302, 303, 307, 308].includes(response.statusCode) && hops < 5; hops++) {
      const location = new URL(String(response.headers.location), 'http://localhost/docs');
      response = await t.app.inject({ method: 'GET', url: location.pathname + location.search });
    }
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/html/);
    expect(response.body).toMatch(/<html/i);
  });
});
