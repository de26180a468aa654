// npm run token -- <user-id> [--expires 24h]: prints a development token
// signed with JWT_SECRET, or with the secret the embedded default generated.
import { loadConfig } from '../src/config.js';
import { mintHs256Token, readOrCreateDevSecret } from '../src/dev-secret.js';

const args = process.argv.slice(2);
const expiresIndex = args.indexOf('--expires');
const sub = args.find((arg, i) => !arg.startsWith('--') && !(expiresIndex >= 0 && i === expiresIndex + 1));
if (!sub) {
  console.error('usage: npm run token -- <user-id> [--expires 24h]');
  process.exit(2);
}

const config = loadConfig({ ...process.env, DATABASE_URL: undefined });
const secret = config.jwtSecret ?? (await readOrCreateDevSecret(config.dataDir));
console.log(
  await mintHs256Token({
    secret,
    sub,
    expiresIn: expiresIndex >= 0 ? args[expiresIndex + 1] : undefined,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
  }),
);
