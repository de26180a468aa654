// npm run db:migrate: applies migrations and policies to an existing database.
//
//   DATABASE_OWNER_URL  owner (migration) role's URL, e.g. Neon's neondb_owner
//                       on the direct, non-pooled host. Required.
//   AUTHENTICATOR_PASSWORD  optional: sets the password the gateway's
//                       authenticator role logs in with.
import { setAuthenticatorPassword } from '../src/db/database.js';
import { migrate } from '../src/db/migrate.js';

const ownerUrl = process.env.DATABASE_OWNER_URL;
if (!ownerUrl) {
  console.error(
    'db:migrate needs DATABASE_OWNER_URL: the URL of the role that owns the schema ' +
      '(postgres locally, neondb_owner on Neon, over the direct non-pooled host).',
  );
  process.exit(2);
}

await migrate(ownerUrl);
console.log('migrations and policies applied');
if (process.env.AUTHENTICATOR_PASSWORD) {
  await setAuthenticatorPassword(ownerUrl, process.env.AUTHENTICATOR_PASSWORD);
  console.log('authenticator password set');
}
