// A minimal JWKS endpoint publishing one Ed25519 key, for EdDSA tokens in the
// benchmark (the verifier fetches it once and caches it).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

export async function startJwksStandIn() {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-key', alg: 'EdDSA' };
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    jwksUrl: `http://127.0.0.1:${port}/api/auth/jwks`,
    sign: (sub: string) =>
      new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid: 'bench-key' }).setSubject(sub).setIssuedAt()
        .setExpirationTime('2h').sign(privateKey),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
