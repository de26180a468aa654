// The address the gateway will listen on, checked before any slow start-up
// work (the embedded database, migrations), so a port in use is reported in
// one line at once rather than as a stack trace after the database started.
import net from 'node:net';
import { OperatorError } from './operator-error.js';

/** One line naming the setting to change, for an error of listen(). */
export function listenError(error: unknown, host: string, port: number): OperatorError | undefined {
  const code = (error as { code?: string } | undefined)?.code;
  switch (code) {
    case 'EADDRINUSE':
      return new OperatorError(`PORT ${port} on HOST ${host} is already in use by another process: set PORT to a free port, or stop the other process.`);
    case 'EACCES':
    case 'EPERM':
      return new OperatorError(`This user may not listen on PORT ${port} (HOST ${host}): ports below 1024 need privileges; set PORT to 1024 or above.`);
    case 'EADDRNOTAVAIL':
      return new OperatorError(`HOST ${host} is not an address of this machine: set HOST to one of its addresses (127.0.0.1, or 0.0.0.0 for all).`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new OperatorError(`HOST ${host} does not resolve to an address: set HOST to an IP address or a resolvable name.`);
  }
  return undefined;
}

/** Binds host:port and lets it go again; throws an OperatorError when it cannot be bound. */
export async function checkListenAddress(host: string, port: number): Promise<void> {
  const probe = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ host, port, exclusive: true }, resolve);
    });
  } catch (error) {
    throw listenError(error, host, port) ?? error;
  }
  await new Promise((resolve) => probe.close(resolve));
}
