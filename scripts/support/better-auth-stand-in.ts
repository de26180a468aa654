// A local stand-in for a Better Auth server with the JWT plugin, faithful to
// what the gateway sees of one (better-auth's plugins/jwt: sign.ts, index.ts):
//
// - GET  /api/auth/jwks         {"keys":[{alg,crv,kty,x,kid}]}: every key not
//                               yet past its grace period, newest last
// - GET  /api/auth/token        {"token": "<JWT>"} for the session cookie (what
//                               authClient.token() calls, with jwtClient())
// - GET  /api/auth/get-session  {session, user}, with the JWT in the
//                               `set-auth-jwt` response header
//
// Tokens: protected header {alg: "EdDSA", kid}; payload = the session's user
// (id, name, email, emailVerified, image, createdAt, updatedAt) plus iat,
// exp (iat + 15 min), iss and aud (both the base URL) and sub (the user id).
// Keys are Ed25519, Better Auth's default keyPairConfig. rotate() adds a new
// signing key and keeps the old one published, as Better Auth's rotation does.
//
// Used by scripts/better-auth-e2e.ts; tests/support/jwks-server.ts is the
// tests' own, smaller equivalent (scripts must not import from tests/).
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export const SESSION_COOKIE = 'better-auth.session_token';
/** Better Auth's default jwt.expirationTime ("15m"), counted from iat as its toExpJWT does. */
export const DEFAULT_EXPIRATION_SECONDS = 15 * 60;

export interface StandInKey {
  kid: string;
  privateKey: CryptoKey;
  /** The JWK exactly as /api/auth/jwks publishes it. */
  publishedJwk: JWK;
}

/** Better Auth's user object (the default JWT payload). */
export interface StandInUser {
  id: string;
  name: string;
  email: string;
  emailVerified: boolean;
  image: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface StandInSession {
  id: string;
  token: string;
  userId: string;
  expiresAt: string;
  createdAt: string;
  updatedAt: string;
}

export interface SignOptions {
  /** Sign with this key (default: the newest published one). */
  key?: StandInKey;
  /** Claims that override or add to the defaults (e.g. aud, exp). */
  claims?: JWTPayload;
}

export interface BetterAuthStandIn {
  /** BETTER_AUTH_URL: also the tokens' iss and aud. */
  baseUrl: string;
  jwksUrl: string;
  /** Published keys, oldest first; the last one signs. */
  keys: StandInKey[];
  /** Times (ms since epoch) at which /api/auth/jwks was requested. */
  jwksFetches: number[];
  /** Creates a user and a session; returns the Cookie header a browser would send. */
  signIn(name: string): { user: StandInUser; cookie: string };
  /** Signs a JWT for the user exactly as the plugin's getJwtToken does. */
  sign(user: StandInUser, options?: SignOptions): Promise<string>;
  /** Publishes a new Ed25519 key that signs from now on; old keys stay published. */
  rotate(): Promise<StandInKey>;
  close(): Promise<void>;
}

/** Better Auth's generateId(): 32 characters of [A-Za-z0-9]. */
function generateId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(32)].map((byte) => alphabet[byte % alphabet.length]).join('');
}

/** A key as Better Auth's createJwk makes it (EdDSA / Ed25519, the default). */
export async function createStandInKey(): Promise<StandInKey> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const kid = generateId();
  // index.ts: { alg: key.alg ?? 'EdDSA', crv: key.crv ?? defaultCrv, ...JSON.parse(publicKey), kid }
  const publishedJwk: JWK = { alg: 'EdDSA', crv: 'Ed25519', ...(await exportJWK(publicKey)), kid };
  return { kid, privateKey, publishedJwk };
}

function cookieValue(request: IncomingMessage, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return decodeURIComponent(value.join('='));
  }
  return undefined;
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

export async function startBetterAuthStandIn(): Promise<BetterAuthStandIn> {
  const users = new Map<string, StandInUser>();
  const sessions = new Map<string, StandInSession>();
  let server: Server;

  const standIn: BetterAuthStandIn = {
    baseUrl: '',
    jwksUrl: '',
    keys: [await createStandInKey()],
    jwksFetches: [],

    signIn(name) {
      const now = new Date().toISOString();
      const user: StandInUser = {
        id: generateId(),
        name,
        email: `${name.toLowerCase().replace(/[^a-z0-9]+/g, '.')}@example.com`,
        emailVerified: true,
        image: null,
        createdAt: now,
        updatedAt: now,
      };
      users.set(user.id, user);
      const session: StandInSession = {
        id: generateId(),
        token: generateId(),
        userId: user.id,
        expiresAt: new Date(Date.now() + 7 * 24 * 3600_000).toISOString(),
        createdAt: now,
        updatedAt: now,
      };
      sessions.set(session.token, session);
      return { user, cookie: `${SESSION_COOKIE}=${encodeURIComponent(session.token)}` };
    },

    async sign(user, options = {}) {
      const key = options.key ?? standIn.keys.at(-1)!;
      // getJwtToken: { iat, ...session.user, sub: user.id }; signJWT adds exp, iss, aud.
      const { iss, aud, exp, iat: iatClaim, ...rest } = { ...options.claims };
      const iat = iatClaim ?? Math.floor(Date.now() / 1000);
      return new SignJWT({ iat, ...user, sub: user.id, ...rest })
        .setProtectedHeader({ alg: 'EdDSA', kid: key.kid })
        .setExpirationTime(exp ?? iat + DEFAULT_EXPIRATION_SECONDS)
        .setIssuer(iss ?? standIn.baseUrl)
        .setAudience(aud ?? standIn.baseUrl)
        .setIssuedAt(iat)
        .setSubject(user.id)
        .sign(key.privateKey);
    },

    async rotate() {
      const key = await createStandInKey();
      standIn.keys.push(key);
      return key;
    },

    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const sessionOf = (request: IncomingMessage) => {
    const token = cookieValue(request, SESSION_COOKIE);
    const session = token === undefined ? undefined : sessions.get(token);
    const user = session && users.get(session.userId);
    return session && user ? { session, user } : undefined;
  };

  server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET') return sendJson(response, 404, { message: 'Not Found' });
    switch (path) {
      case '/api/auth/jwks':
        standIn.jwksFetches.push(Date.now());
        return sendJson(response, 200, { keys: standIn.keys.map((key) => key.publishedJwk) });
      case '/api/auth/token': {
        const current = sessionOf(request);
        if (!current) return sendJson(response, 401, { code: 'UNAUTHORIZED', message: 'Unauthorized' });
        standIn.sign(current.user).then((token) => sendJson(response, 200, { token }));
        return;
      }
      case '/api/auth/get-session': {
        const current = sessionOf(request);
        if (!current) return sendJson(response, 200, null);
        standIn.sign(current.user).then((token) =>
          sendJson(response, 200, current, { 'set-auth-jwt': token, 'access-control-expose-headers': 'set-auth-jwt' }),
        );
        return;
      }
      default:
        return sendJson(response, 404, { message: 'Not Found' });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  standIn.baseUrl = `http://127.0.0.1:${port}`;
  standIn.jwksUrl = `${standIn.baseUrl}/api/auth/jwks`;
  return standIn;
}
