// On the embedded default with no key configured, the server signs nothing
// itself but needs a secret to verify development tokens: one is generated
// once and kept in DATA_DIR, and `npm run token` signs with it.
import path from 'node:path';
import { SignJWT } from 'jose';
import { prepareDataDir } from './data-dir.js';
import { readOrCreateSecretFile } from './secret-file.js';

export function devSecretPath(dataDir: string): string {
  return path.resolve(dataDir, 'dev-jwt-secret');
}

/** DATA_DIR is checked (or created) first: a secret in a directory someone else prepared is refused. */
export async function readOrCreateDevSecret(dataDir: string): Promise<string> {
  await prepareDataDir(dataDir);
  return readOrCreateSecretFile(devSecretPath(dataDir));
}

export interface MintOptions {
  secret: string;
  sub: string;
  expiresIn?: string;
  issuer?: string;
  audience?: string | string[];
  extraClaims?: Record<string, unknown>;
}

export async function mintHs256Token(options: MintOptions): Promise<string> {
  let jwt = new SignJWT({ ...options.extraClaims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.sub)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '24h');
  if (options.issuer) jwt = jwt.setIssuer(options.issuer);
  if (options.audience) jwt = jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(options.secret));
}
