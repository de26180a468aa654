// PgBouncer's own answers when it has no server connection to give a client:
// after a failed server login (a compute restarting or waking) it refuses for
// server_login_retry (15 s by default) with "server login has been failing,
// try again later (server_login_retry)", and it drops clients waiting for a
// server it cannot reach with "pgbouncer cannot connect to server". Both are
// FATAL 08P01 sent before any byte of the client's batch reached a server, so
// the batch was not executed: the request may wait and try again, like a
// connection set-up, without risking a second execution.
const NO_SERVER_CONNECTION = /server_login_retry|server login has been failing|pgbouncer cannot connect to server/;

export function poolerHadNoServer(error: unknown): boolean {
  const { code, severity, message } = (error ?? {}) as { code?: unknown; severity?: unknown; message?: unknown };
  return code === '08P01' && severity === 'FATAL' && typeof message === 'string' && NO_SERVER_CONNECTION.test(message);
}
