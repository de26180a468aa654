// EdDSA tokens for the benchmark from the Better Auth stand-in (its JWKS is
// fetched once by the gateway and cached), valid for the whole run.
import { startBetterAuthStandIn } from '../support/better-auth-stand-in.js';

const TWO_HOURS = 2 * 60 * 60;

export async function startJwksStandIn() {
  const standIn = await startBetterAuthStandIn();
  const createdAt = new Date().toISOString();
  return {
    jwksUrl: standIn.jwksUrl,
    sign: (sub: string) =>
      standIn.sign(
        { id: sub, name: sub, email: `${sub}@example.com`, emailVerified: true, image: null, createdAt, updatedAt: createdAt },
        { claims: { exp: Math.floor(Date.now() / 1000) + TWO_HOURS } },
      ),
    close: () => standIn.close(),
  };
}
