// Every route of the instance this is registered on requires a verified bearer token, and
// on /api/{user_id}/... the path's user must be the token's subject. Runs in
// onRequest, before the body is read, so 401 and 403 come before any 4xx
// about the body.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { InvalidTokenError, type TokenVerifier } from '../auth/token-verifier.js';
import type { RequestIdentity } from '../db/request-transaction.js';
import { ProblemError } from './problem.js';

declare module 'fastify' {
  interface FastifyRequest {
    identity: RequestIdentity & { sub: string };
  }
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const claimsJsonCache = new WeakMap<object, string>();

export function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  if (!header) throw new InvalidTokenError('no bearer token in the Authorization header', false);
  const match = BEARER.exec(header);
  if (!match) {
    const isBearer = /^Bearer\b/i.test(header);
    throw new InvalidTokenError(isBearer ? 'the token is malformed' : 'only Bearer tokens are accepted', isBearer);
  }
  return match[1];
}

export function registerAuthentication(app: FastifyInstance, verify: TokenVerifier): void {
  app.decorateRequest('identity', null as unknown as FastifyRequest['identity']);
  app.addHook('onRequest', async (request) => {
    const claims = await verify(bearerToken(request));
    let claimsJson = claimsJsonCache.get(claims);
    if (claimsJson === undefined) {
      claimsJson = JSON.stringify(claims);
      claimsJsonCache.set(claims, claimsJson);
    }
    request.identity = { sub: claims.sub, claimsJson };

    const pathUser = (request.params as { user_id?: string }).user_id;
    if (pathUser !== undefined && pathUser !== claims.sub) {
      throw new ProblemError('forbidden', "The path names another user's tasks.");
    }
  });
}
