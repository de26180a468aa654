// npm run db:migrate: applies migrations and policies to an existing database.
//
//   DATABASE_OWNER_URL  owner (migration) role's URL, e.g. Neon's neondb_owner
//                       on the direct, non-pooled host. Required.
//   AUTHENTICATOR_PASSWORD  optional: sets the password the gateway's
//                       authenticator role logs in with.
import { setAuthenticatorPassword } from '../src/db/database.js';
import { ChannelBindingError, ConnectionUrlError } from '../src/db/connection-settings.js';
import { MigrationTargetError, migrate } from '../src/db/migrate.js';

const ownerUrl = process.env.DATABASE_OWNER_URL;
if (!ownerUrl) {
  console.error(
    'db:migrate needs DATABASE_OWNER_URL: the URL of the role that owns the schema ' +
      '(postgres locally, neondb_owner on Neon, over the direct non-pooled host).',
  );
  process.exit(2);
}

try {
  await migrate(ownerUrl);
} catch (error) {
  // A wrong target or URL: one line saying what to change, no stack.
  if (error instanceof MigrationTargetError || error instanceof ConnectionUrlError || error instanceof ChannelBindingError) {
    console.error(`db:migrate: ${error.message}`);
    process.exit(2);
  }
  throw error;
}
console.log('migrations and policies applied');
if (process.env.AUTHENTICATOR_PASSWORD) {
  await setAuthenticatorPassword(ownerUrl, process.env.AUTHENTICATOR_PASSWORD);
  console.log('authenticator password set');
}
