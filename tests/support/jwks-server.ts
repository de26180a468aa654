// A local stand-in for Better Auth's JWKS endpoint (/api/auth/jwks): Ed25519
// keys published as OKP JWKs with a kid, tokens signed with EdDSA carrying the
// claims Better Auth puts in its JWTs.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function createSigningKey(alg: 'EdDSA' | 'ES256' | 'RS256' | 'PS256' = 'EdDSA'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { crv: alg === 'EdDSA' ? 'Ed25519' : undefined, extractable: true });
  const kid = randomUUID();
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg } };
}

export interface JwksServer {
  /** Base URL of the stand-in identity provider, also used as iss and aud. */
  baseUrl: string;
  jwksUrl: string;
  keys: SigningKey[];
  /** How many times the JWKS was fetched. */
  fetches: number;
  /** Answer 500 to JWKS requests while true. */
  failing: boolean;
  publish(key: SigningKey): void;
  sign(sub: string, options?: { key?: SigningKey; claims?: Record<string, unknown>; expiresIn?: string }): Promise<string>;
  close(): Promise<void>;
}

export async function startJwksServer(): Promise<JwksServer> {
  const first = await createSigningKey();
  let server: Server;
  const state: JwksServer = {
    baseUrl: '',
    jwksUrl: '',
    keys: [first],
    fetches: 0,
    failing: false,
    publish(key) {
      state.keys.push(key);
    },
    async sign(sub, options = {}) {
      const key = options.key ?? state.keys[0];
      return new SignJWT({
        // What Better Auth's JWT plugin puts in a token by default: the user.
        id: sub,
        email: `${sub}@example.com`,
        emailVerified: true,
        name: `User ${sub}`,
        image: null,
        createdAt: new Date().toISOString(),
        updatedAt: new Date().toISOString(),
        ...options.claims,
      })
        .setProtectedHeader({ alg: key.alg, kid: key.kid })
        .setSubject(sub)
        .setIssuer(state.baseUrl)
        .setAudience(state.baseUrl)
        .setIssuedAt()
        .setExpirationTime(options.expiresIn ?? '15m')
        .sign(key.privateKey);
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  server = createServer((request, response) => {
    if (request.url !== '/api/auth/jwks') {
      response.writeHead(404).end();
      return;
    }
    state.fetches += 1;
    if (state.failing) {
      response.writeHead(500).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ keys: state.keys.map((key) => key.publicJwk) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  state.baseUrl = `http://127.0.0.1:${port}`;
  state.jwksUrl = `${state.baseUrl}/api/auth/jwks`;
  return state;
}
