// npm start: configuration from the environment, then serve until SIGTERM/SIGINT.
import { ConfigError, loadConfig } from './config.js';
import { DataDirError } from './data-dir.js';
import { OperatorError } from './operator-error.js';
import { startServer } from './server.js';

function banner(lines: string[]) {
  process.stderr.write(`\n${lines.map((line) => `  ${line}`).join('\n')}\n\n`);
}

let config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`task-api: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}

let server;
try {
  server = await startServer(config);
} catch (error) {
  // DATA_DIR refusals are one sentence that names the fix, not a stack trace.
  if (error instanceof DataDirError) {
    process.stderr.write(`task-api: ${error.message}\n`);
    process.exit(1);
  }
  // Other operator errors (port in use, database checks): one paragraph, no stack trace.
  if (error instanceof OperatorError) {
    process.stderr.write(`task-api: cannot start: ${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
const keys = [
  config.jwtSecret ? 'HS256 (JWT_SECRET)' : undefined,
  config.jwksUrl ? `JWKS ${config.jwksUrl}` : undefined,
  server.devSecretFile ? `HS256 development secret in ${server.devSecretFile}` : undefined,
].filter(Boolean);
const lines = [
  `Task API listening on ${server.url}`,
  `database: ${server.database.description}`,
  `token keys: ${keys.join(' and ')}${config.jwtIssuer ? `, issuer ${config.jwtIssuer}` : ''}${config.jwtAudience ? `, audience ${config.jwtAudience.join(',')}` : ''}`,
  `API reference: ${server.url}/docs`,
  `metrics: ${config.metrics ? `on, Prometheus text at ${server.url}/metrics` : 'off (METRICS=true serves /metrics)'}`,
];
if (server.devSecretFile) {
  lines.push(
    '',
    'Try it (development token for user "demo-user"):',
    `  TOKEN=$(npm run --silent token -- demo-user)`,
    `  curl -s -X POST ${server.url}/api/tasks -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"title":"Buy milk"}'`,
    `  curl -s ${server.url}/api/tasks -H "Authorization: Bearer $TOKEN"`,
  );
}
banner(lines);

// SIGTERM (an orchestrator) drains for SHUTDOWN_GRACE_MS first, so load
// balancers see readiness fail before connections are refused; SIGINT (Ctrl-C
// at a terminal) skips the grace period.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    const graceMs = signal === 'SIGTERM' ? config.shutdownGraceMs : 0;
    server.app.log.info({ signal, graceMs }, 'shutting down: readiness 503, draining');
    server.close(graceMs).then(
      () => process.exit(0),
      (error) => {
        server.app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
