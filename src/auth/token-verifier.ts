// Verifies bearer tokens. The key (and so the algorithm family) is chosen by
// configuration: HS256 tokens are checked only against JWT_SECRET, asymmetric
// ones only against the keys published at JWKS_URL. A token's header can pick
// between the configured sources but never widen them, so `alg: none` and an
// HS256 token "signed" with a public key both fail.
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';

export const ASYMMETRIC_ALGORITHMS = ['EdDSA', 'ES256', 'RS256', 'PS256'] as const;

export interface VerifiedClaims extends JWTPayload {
  sub: string;
}

/** The token is absent, malformed or fails verification: 401. */
export class InvalidTokenError extends Error {
  constructor(message: string, readonly tokenPresent = true) {
    super(message);
  }
}

/** The keys needed to verify the token cannot be fetched: 503. */
export class KeySourceUnavailableError extends Error {}

export interface TokenVerifierOptions {
  secret?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string[];
  clockToleranceSeconds: number;
  /** How many verified tokens to remember (0 disables the cache). */
  cacheSize?: number;
  /** Shortest time between two JWKS refetches caused by unknown `kid`s. */
  jwksCooldownMs?: number;
  now?: () => number;
}

export type TokenVerifier = (token: string) => Promise<VerifiedClaims>;

interface CachedToken {
  claims: VerifiedClaims;
  expiresAtMs: number;
}

function describe(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return `the token's "${error.claim}" claim is not acceptable (${error.reason})`;
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature is invalid';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'no published key matches the token';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'the token algorithm is not accepted';
  return 'the token is malformed';
}

/**
 * The JWKS key lookup, with its failures sorted: no matching key is the
 * token's fault (401); failing to fetch or read the key set is not (503).
 */
function keySourceGuard(jwks: JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await jwks(header, token);
    } catch (error) {
      if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys) {
        throw error;
      }
      throw new KeySourceUnavailableError('the signing keys could not be fetched', { cause: error });
    }
  };
}

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const now = options.now ?? Date.now;
  const secret = options.secret ? new TextEncoder().encode(options.secret) : undefined;
  const jwks: JWTVerifyGetKey | undefined = options.jwksUrl
    ? keySourceGuard(
        createRemoteJWKSet(new URL(options.jwksUrl), {
          cooldownDuration: options.jwksCooldownMs ?? 5_000,
          cacheMaxAge: 10 * 60_000,
          timeoutDuration: 5_000,
        }),
      )
    : undefined;
  const cacheSize = options.cacheSize ?? 10_000;
  const cache = new Map<string, CachedToken>();
  const toleranceMs = options.clockToleranceSeconds * 1000;

  async function verifyUncached(token: string): Promise<VerifiedClaims> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new InvalidTokenError('the token is malformed');
    }

    const verifyOptions = {
      issuer: options.issuer,
      audience: options.audience,
      clockTolerance: options.clockToleranceSeconds,
      requiredClaims: ['exp', 'sub'],
      currentDate: new Date(now()),
    };

    let payload: JWTPayload;
    try {
      if (alg === 'HS256' && secret) {
        ({ payload } = await jwtVerify(token, secret, { ...verifyOptions, algorithms: ['HS256'] }));
      } else if (alg && (ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg) && jwks) {
        ({ payload } = await jwtVerify(token, jwks, { ...verifyOptions, algorithms: [...ASYMMETRIC_ALGORITHMS] }));
      } else {
        throw new InvalidTokenError('the token algorithm is not accepted');
      }
    } catch (error) {
      if (error instanceof InvalidTokenError || error instanceof KeySourceUnavailableError) throw error;
      throw new InvalidTokenError(describe(error));
    }

    if (typeof payload.sub !== 'string' || payload.sub.length === 0) {
      throw new InvalidTokenError('the token has no subject');
    }
    // jose checks exp and nbf; a token issued in the future is refused too.
    if (typeof payload.iat === 'number' && payload.iat * 1000 > now() + toleranceMs) {
      throw new InvalidTokenError('the token was issued in the future');
    }
    return payload as VerifiedClaims;
  }

  return async function verify(token: string): Promise<VerifiedClaims> {
    const cached = cache.get(token);
    if (cached) {
      if (cached.expiresAtMs + toleranceMs > now()) return cached.claims;
      cache.delete(token);
    }
    const claims = await verifyUncached(token);
    if (cacheSize > 0) {
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
      cache.set(token, { claims, expiresAtMs: (claims.exp as number) * 1000 });
    }
    return claims;
  };
}
