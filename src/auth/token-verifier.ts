// Verifies bearer tokens. The key (and so the algorithm family) is chosen by
// configuration: HS256 tokens are checked only against JWT_SECRET, asymmetric
// ones only against the keys published at JWKS_URL. A token's header can pick
// between the configured sources but never widen them, so `alg: none` and an
// HS256 token "signed" with a public key both fail.
import {
  createRemoteJWKSet,
  customFetch,
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

/**
 * The keys needed to verify the token cannot be fetched, or the token names a
 * key that may have been published since the last fetch while another fetch
 * is not yet allowed: 503, retry after `retryAfterSeconds` when known.
 */
export class KeySourceUnavailableError extends Error {
  retryAfterSeconds?: number;
}

/** The longest `sub` the API accepts: the database stores it as user_id, in indexes. */
export const SUB_MAX_LENGTH = 255;

/** `typ` values of an access token (RFC 8725 §3.11, RFC 9068); absent is accepted too. */
const ACCESS_TOKEN_TYPES = new Set(['jwt', 'at+jwt', 'application/at+jwt']);

/** How long a fetched JWKS is used before it is fetched again. */
const JWKS_CACHE_MAX_AGE_MS = 10 * 60_000;

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
  /** How long a fetched JWKS is used before it is fetched again (default 10 minutes). */
  jwksCacheMaxAgeMs?: number;
  now?: () => number;
}

export type TokenVerifier = (token: string) => Promise<VerifiedClaims>;

interface CachedToken {
  claims: VerifiedClaims;
  /** exp, or the end of the JWKS cache lifetime from verification, whichever is sooner. */
  expiresAtMs: number;
  /** The JWKS fetch a JWKS-verified token was checked against; the entry ends with the next one. */
  keySetGeneration?: number;
}

/**
 * Why PostgreSQL could not hold a claim, or undefined: the claims become
 * request.jwt.claims, read as jsonb, which has no NUL character and no
 * unpaired UTF-16 surrogate (JSON.stringify writes those as \udXXX escapes,
 * which jsonb refuses).
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function unstorable(value: unknown): string | undefined {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) return 'a NUL character';
    if (LONE_SURROGATE.test(value)) return 'an unpaired UTF-16 surrogate';
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, item] of Object.entries(value)) {
    const reason = unstorable(key) ?? unstorable(item);
    if (reason) return reason;
  }
  return undefined;
}

/** The checks on a verified token's claims that jose does not make. */
function checkClaims(payload: JWTPayload, nowMs: number, toleranceMs: number): VerifiedClaims {
  const sub = payload.sub;
  if (typeof sub !== 'string' || sub.length === 0) {
    throw new InvalidTokenError('the token has no subject');
  }
  if (sub.length > SUB_MAX_LENGTH) {
    throw new InvalidTokenError(`the token's subject is longer than ${SUB_MAX_LENGTH} characters`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(sub)) {
    throw new InvalidTokenError("the token's subject contains control characters");
  }
  // jose checks exp and nbf; a token issued in the future is refused too.
  if (typeof payload.iat === 'number' && payload.iat * 1000 > nowMs + toleranceMs) {
    throw new InvalidTokenError('the token was issued in the future');
  }
  const reason = unstorable(payload);
  if (reason) throw new InvalidTokenError(`the token's claims contain ${reason}, which cannot be stored`);
  return payload as VerifiedClaims;
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

type RemoteKeySet = ReturnType<typeof createRemoteJWKSet>;

/** The JWKS fetches that got a key set: how many, when the last was answered, and the kids seen. */
interface FetchLog {
  generation: number;
  lastAtMs: number;
  /** Every kid any fetched key set published: one no longer published was withdrawn, not rotated in. */
  seenKids: Set<string>;
}

/**
 * The JWKS key lookup, with its failures sorted: no matching key after a
 * fetch is the token's fault (401); no matching key while a refetch is not
 * yet allowed (the key may be newly rotated in) and failing to fetch or read
 * the key set are not (503).
 */
function keySourceGuard(jwks: RemoteKeySet, cooldownMs: number, fetches: FetchLog): JWTVerifyGetKey {
  return async (header, token) => {
    const generationBefore = fetches.generation;
    try {
      return await jwks(header, token);
    } catch (error) {
      if (error instanceof joseErrors.JWKSNoMatchingKey) {
        // Refused without a fetch (the key set is unchanged): not known yet, rather than unknown.
        const kid = header.kid;
        const notFetchedYet = typeof kid === 'string' && !fetches.seenKids.has(kid);
        if (notFetchedYet && fetches.generation === generationBefore && jwks.coolingDown) {
          const unavailable = new KeySourceUnavailableError('the token is signed with a key not fetched yet; a refetch is allowed soon');
          unavailable.retryAfterSeconds = Math.max(1, Math.ceil((fetches.lastAtMs + cooldownMs - Date.now()) / 1000));
          throw unavailable;
        }
        throw error;
      }
      if (error instanceof joseErrors.JWKSMultipleMatchingKeys) throw error;
      throw new KeySourceUnavailableError('the signing keys could not be fetched', { cause: error });
    }
  };
}

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const now = options.now ?? Date.now;
  const secret = options.secret ? new TextEncoder().encode(options.secret) : undefined;
  const cooldownMs = options.jwksCooldownMs ?? 5_000;
  const jwksMaxAgeMs = options.jwksCacheMaxAgeMs ?? JWKS_CACHE_MAX_AGE_MS;
  // The refetch cooldown runs from the last answered fetch.
  const fetches: FetchLog = { generation: 0, lastAtMs: 0, seenKids: new Set() };
  const remote = options.jwksUrl
    ? createRemoteJWKSet(new URL(options.jwksUrl), {
        cooldownDuration: cooldownMs,
        cacheMaxAge: jwksMaxAgeMs,
        timeoutDuration: 5_000,
        [customFetch]: async (...args: Parameters<typeof fetch>) => {
          const response = await fetch(...args);
          if (response.ok) {
            fetches.generation += 1;
            fetches.lastAtMs = Date.now();
            const keySet = (await response.clone().json().catch(() => undefined)) as { keys?: { kid?: unknown }[] } | undefined;
            // Bounded by what the key sets published, not by what tokens claim.
            if (fetches.seenKids.size > 1_000) fetches.seenKids.clear();
            for (const key of Array.isArray(keySet?.keys) ? keySet.keys : []) {
              if (typeof key?.kid === 'string') fetches.seenKids.add(key.kid);
            }
          }
          return response;
        },
      })
    : undefined;
  const jwks: JWTVerifyGetKey | undefined = remote ? keySourceGuard(remote, cooldownMs, fetches) : undefined;
  const cacheSize = options.cacheSize ?? 10_000;
  const cache = new Map<string, CachedToken>();
  const toleranceMs = options.clockToleranceSeconds * 1000;

  async function verifyUncached(token: string): Promise<VerifiedClaims> {
    let alg: string | undefined;
    let typ: string | undefined;
    try {
      ({ alg, typ } = decodeProtectedHeader(token));
    } catch {
      throw new InvalidTokenError('the token is malformed');
    }
    // Another kind of JWT signed by the same keys (Better Auth's session-cache
    // cookie, an ID token of another profile) is not an access token.
    if (typ !== undefined && !ACCESS_TOKEN_TYPES.has(String(typ).toLowerCase())) {
      throw new InvalidTokenError('the token is not an access token (its "typ" header is not JWT or at+jwt)');
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

    return checkClaims(payload, now(), toleranceMs);
  }

  return async function verify(token: string): Promise<VerifiedClaims> {
    const cached = cache.get(token);
    if (cached) {
      const keySetCurrent = cached.keySetGeneration === undefined || cached.keySetGeneration === fetches.generation;
      if (keySetCurrent && cached.expiresAtMs > now()) return cached.claims;
      cache.delete(token);
    }
    const claims = await verifyUncached(token);
    if (cacheSize > 0) {
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
      const viaJwks = decodeProtectedHeader(token).alg !== 'HS256';
      cache.set(token, {
        claims,
        expiresAtMs: Math.min((claims.exp as number) * 1000 + toleranceMs, now() + jwksMaxAgeMs),
        // The key set the token was verified against (fetched during verification, if it was).
        keySetGeneration: viaJwks ? fetches.generation : undefined,
      });
    }
    return claims;
  };
}
