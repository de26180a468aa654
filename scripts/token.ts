// npm run token -- <user-id> [--expires 24h]: prints a development token
// signed with JWT_SECRET, or with the secret the embedded default generated.
import { ConfigError, loadConfig } from '../src/config.js';
import { DataDirError } from '../src/data-dir.js';
import { mintHs256Token, readOrCreateDevSecret } from '../src/dev-secret.js';

const args = process.argv.slice(2);
const expiresIndex = args.indexOf('--expires');
const sub = args.find((arg, i) => !arg.startsWith('--') && !(expiresIndex >= 0 && i === expiresIndex + 1));
if (!sub) {
  console.error('usage: npm run token -- <user-id> [--expires 24h]');
  process.exit(2);
}

let config, secret;
try {
  config = loadConfig({ ...process.env, DATABASE_URL: undefined });
  secret = config.jwtSecret ?? (await readOrCreateDevSecret(config.dataDir));
} catch (error) {
  if (!(error instanceof ConfigError || error instanceof DataDirError)) throw error;
  console.error(`token: ${error.message}`);
  process.exit(2);
}
console.log(
  await mintHs256Token({
    secret,
    sub,
    expiresIn: expiresIndex >= 0 ? args[expiresIndex + 1] : undefined,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
  }),
);
