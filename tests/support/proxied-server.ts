// A real gateway process whose database traffic goes through a TCP proxy the
// test can break, hold and release: the set-up of the tests/process-*.test.ts
// suites that fault the gateway's connections.
import { inject } from 'vitest';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

export interface ProxiedServer {
  proxy: TcpProxy;
  server: ServerProcess;
}

/**
 * Starts the proxy to the test database and a gateway process logging in
 * through it as authenticator, with prepared statements as
 * TEST_PREPARED_STATEMENTS says (on unless 'false') and the suite's own
 * `settings` (its DB_* timeouts). The proxy is closed when the process does
 * not start.
 */
export async function startProxiedServer(settings: Record<string, string>): Promise<ProxiedServer> {
  const appUrl = new URL(inject('appUrl'));
  const proxy = await startTcpProxy(appUrl.hostname, Number(appUrl.port || 5432));
  try {
    const server = await startServerProcess({
      DATABASE_URL: proxy.urlFor(inject('appUrl')),
      DB_PREPARED_STATEMENTS: process.env.TEST_PREPARED_STATEMENTS ?? 'true',
      ...settings,
    });
    return { proxy, server };
  } catch (error) {
    await proxy.close();
    throw error;
  }
}
