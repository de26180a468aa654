// A TCP proxy in front of PostgreSQL that a test can break: `down()` cuts
// every connection and refuses new ones (a crashed or restarting server),
// `blackhole()` accepts connections and swallows their bytes (a hung network),
// `up()` restores normal service.
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  port: number;
  /** The given URL with its host and port replaced by the proxy's. */
  urlFor(url: string): string;
  down(): void;
  blackhole(): void;
  up(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  let mode: 'up' | 'down' | 'blackhole' = 'up';
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };

  const server = createServer((client) => {
    track(client);
    if (mode === 'down') {
      client.destroy();
      return;
    }
    if (mode === 'blackhole') {
      client.on('data', () => {});
      return;
    }
    const upstream = connect(targetPort, targetHost);
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const cutAll = () => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    port,
    urlFor(url) {
      const parsed = new URL(url);
      parsed.hostname = '127.0.0.1';
      parsed.port = String(port);
      return parsed.toString();
    },
    down() {
      mode = 'down';
      cutAll();
    },
    blackhole() {
      mode = 'blackhole';
      cutAll();
    },
    up() {
      mode = 'up';
    },
    close() {
      cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
