// Which database failures waiting can cure, and what an operator must do
// about the others. Transient: the server is down, restarting, waking or
// full (connection refused or reset, timeouts, admin shutdown, too many
// connections): retried, then 503 with Retry-After. Permanent: the gateway is
// pointed at the wrong place or with the wrong credentials, or the schema is
// not what this build uses: retrying for seconds only hides the cause, so
// these fail at once, are logged at error level with the fix, and are never
// answered with "retry shortly".

/** SQLSTATEs of a connection attempt that no retry will change. */
const PERMANENT_CONNECT_SQLSTATES = new Set([
  '28P01', // invalid_password
  '28000', // invalid_authorization_specification: unknown role, pg_hba.conf rejects
  '3D000', // invalid_catalog_name: no such database
]);

/**
 * SQLSTATEs of a request's statements meaning the schema lacks what this
 * build calls: never caused by a request's content, always by a database
 * that was not migrated (or migrated for another build).
 */
const MISSING_SCHEMA_SQLSTATES = new Set([
  '3F000', // invalid_schema_name: schema api does not exist
  '42P01', // undefined_table
  '42883', // undefined_function
]);

/** The SQLSTATE of an error PostgreSQL reported, if it is one. */
export function sqlstateOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A failed connection attempt that retrying cannot cure. */
export function isPermanentConnectError(error: unknown): boolean {
  return PERMANENT_CONNECT_SQLSTATES.has(sqlstateOf(error) ?? '');
}

/** A statement failed because the schema lacks an object this build uses. */
export function isMissingSchemaError(error: unknown): boolean {
  return MISSING_SCHEMA_SQLSTATES.has(sqlstateOf(error) ?? '');
}

/** What the gateway connects as and to, for messages (never the password). */
export interface ConnectionTarget {
  user?: string;
  database?: string;
  host?: string;
}

export function targetOf(url: string): ConnectionTarget {
  try {
    const parsed = new URL(url);
    return {
      user: decodeURIComponent(parsed.username) || undefined,
      database: decodeURIComponent(parsed.pathname.replace(/^\//, '')) || undefined,
      host: parsed.host || undefined,
    };
  } catch {
    return {};
  }
}

export const MIGRATE_FIX = 'Fix: run `npm run db:migrate` with DATABASE_OWNER_URL set to the schema owner\'s URL, then start the gateway again.';

/**
 * One paragraph naming the cause of a permanent failure and its fix, or
 * undefined when the error is not a permanent one.
 */
export function explainPermanentError(error: unknown, target: ConnectionTarget = {}): string | undefined {
  const code = sqlstateOf(error);
  const role = target.user ? `role "${target.user}"` : 'the role in DATABASE_URL';
  const where = target.host ? ` at ${target.host}` : '';
  const reason = error instanceof Error ? error.message : String(error);
  switch (code) {
    case '28P01':
      return (
        `The database${where} rejected the password of ${role} (SQLSTATE 28P01: ${reason}). ` +
        'Fix: DATABASE_URL must carry authenticator\'s password, the one given as AUTHENTICATOR_PASSWORD to `npm run db:migrate`.'
      );
    case '28000':
      return (
        `The database${where} refused ${role} (SQLSTATE 28000: ${reason}): the role does not exist, or pg_hba.conf does not let it connect from here. ` +
        'Fix: DATABASE_URL must log in as authenticator, the role `npm run db:migrate` creates.'
      );
    case '3D000':
      return (
        `The database${target.database ? ` "${target.database}"` : ''} does not exist${where} (SQLSTATE 3D000: ${reason}). ` +
        `Fix: correct the database name in DATABASE_URL, or create the database and migrate it. ${MIGRATE_FIX}`
      );
  }
  if (isMissingSchemaError(error)) {
    return `The database lacks objects this build of the gateway uses (SQLSTATE ${code}: ${reason}): it was not migrated, or migrated by an older build. ${MIGRATE_FIX}`;
  }
  return undefined;
}

/** The login role may not SET ROLE authenticated: usually the owner's URL pasted as DATABASE_URL. */
export function explainCannotBecomeAuthenticated(reason: string, target: ConnectionTarget = {}): string {
  const role = target.user ? `Role "${target.user}"` : 'The role in DATABASE_URL';
  return (
    `${role} cannot become the role authenticated (${reason}), so every request would be refused. ` +
    'This is usually the schema owner\'s URL (Neon\'s console shows it first). ' +
    'Fix: set DATABASE_URL to authenticator\'s URL (user authenticator, the password given as AUTHENTICATOR_PASSWORD to `npm run db:migrate`).'
  );
}

/**
 * The gateway cannot use its database because of its configuration: wrong
 * credentials or database, a schema that was not migrated, a login role that
 * cannot become `authenticated`. Answered without "retry shortly".
 */
export class DatabaseMisconfiguredError extends Error {
  constructor(explanation: string, options?: { cause?: unknown }) {
    super(explanation, options);
  }
}
