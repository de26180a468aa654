// Gives the whole test run one freshly migrated database: a new database in
// the PostgreSQL at TEST_DATABASE_URL (an owner/superuser URL), or, by
// default, in an embedded cluster started in a temporary directory.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startEmbeddedCluster, type EmbeddedCluster } from '../../src/db/embedded-cluster.js';
import { prepareDatabase, withDatabase } from '../../src/db/database.js';
import { provideNeonStandIn } from './neon-stand-in.js';
import { startPgBouncer } from './pgbouncer.js';

declare module 'vitest' {
  export interface ProvidedContext {
    ownerUrl: string;
    appUrl: string;
    /** authenticator's URL straight to the server, even when appUrl goes through PgBouncer. */
    directAppUrl: string;
    serverUrl: string;
  }
}

export default async function setup(project: TestProject) {
  // TEST_NEON_STAND_IN=1: a Neon-like branch (TLS, SCRAM, neondb_owner, PgBouncer) instead.
  if (process.env.TEST_NEON_STAND_IN === '1') {
    const neon = await provideNeonStandIn(17);
    for (const key of ['ownerUrl', 'appUrl', 'directAppUrl', 'serverUrl'] as const) project.provide(key, neon[key]);
    return neon.stop;
  }
  let cluster: EmbeddedCluster | undefined;
  let tempDir: string | undefined;
  let serverUrl = process.env.TEST_DATABASE_URL;
  if (!serverUrl) {
    // A 0700 directory of our own: as root, PostgreSQL (OS user postgres)
    // gets the cluster directory as a file descriptor, so nothing above it
    // needs opening up.
    tempDir = await mkdtemp(path.join(tmpdir(), 'task-api-test-'));
    try {
      cluster = await startEmbeddedCluster({
        clusterDir: path.join(tempDir, 'pg'),
        logFile: path.join(tempDir, 'postgres.log'),
      });
    } catch (error) {
      await rm(tempDir, { recursive: true, force: true });
      throw error;
    }
    serverUrl = cluster.superuserUrl;
  }

  const databaseName = `task_api_test_${randomBytes(4).toString('hex')}`;
  const ownerUrl = withDatabase(serverUrl, databaseName);
  const directAppUrl = await prepareDatabase(ownerUrl, 'authenticator-test-password');
  // TEST_PGBOUNCER=1: the gateway's connections go through PgBouncer in
  // transaction mode, as they do with Neon's pooled URL.
  const pgbouncer = process.env.TEST_PGBOUNCER === '1' ? await startPgBouncer(directAppUrl) : undefined;
  const appUrl = pgbouncer?.url ?? directAppUrl;

  project.provide('ownerUrl', ownerUrl);
  project.provide('appUrl', appUrl);
  project.provide('directAppUrl', directAppUrl);
  project.provide('serverUrl', serverUrl);

  return async () => {
    const admin = new pg.Client({ connectionString: serverUrl });
    await pgbouncer?.stop();
    await admin.connect();
    await admin.query(`drop database if exists ${admin.escapeIdentifier(databaseName)} with (force)`);
    await admin.end();
    await cluster?.stop();
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
  };
}
