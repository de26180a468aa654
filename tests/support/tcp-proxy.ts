// A TCP proxy in front of PostgreSQL that a test can break: `down()` cuts
// every connection and refuses new ones (a crashed or restarting server),
// `blackhole()` accepts connections and swallows their bytes (a hung network),
// `hold()` keeps every byte in both directions without delivering it (a
// stalled network or a frozen host) until `release()` delivers it all, even
// for connections whose client has given up meanwhile, `up()` restores
// normal service.
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface TcpProxy {
  port: number;
  /** The given URL with its host and port replaced by the proxy's. */
  urlFor(url: string): string;
  down(): void;
  blackhole(): void;
  hold(): void;
  /**
   * Delivers everything held, in order, and resumes normal service. Resolves
   * once every connection whose client went away during the hold has been
   * closed by the server too (it has read and handled all it was sent).
   */
  release(): Promise<void>;
  up(): void;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  toUpstream: Buffer[];
  toClient: Buffer[];
  clientGone: boolean;
  upstreamClosed: Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  let mode: 'up' | 'down' | 'blackhole' | 'hold' = 'up';
  let acceptedCount = 0;
  const sockets = new Set<Socket>();
  const pairs = new Set<Pair>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };

  const server = createServer((client) => {
    acceptedCount++;
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
    const pair: Pair = {
      client,
      upstream,
      toUpstream: [],
      toClient: [],
      clientGone: false,
      upstreamClosed: new Promise((resolve) => upstream.once('close', () => resolve())),
    };
    pairs.add(pair);
    client.on('data', (chunk) => (mode === 'hold' ? pair.toUpstream.push(chunk) : upstream.write(chunk)));
    upstream.on('data', (chunk) => (mode === 'hold' ? pair.toClient.push(chunk) : client.write(chunk)));
    upstream.on('close', () => {
      pairs.delete(pair);
      client.destroy();
    });
    client.on('close', () => {
      pair.clientGone = true;
      // Held bytes still go to the server on release, as a stalled network delivers them.
      if (mode !== 'hold' && pair.toUpstream.length === 0) upstream.destroy();
    });
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
    hold() {
      mode = 'hold';
    },
    async release() {
      mode = 'up';
      const abandoned: Promise<void>[] = [];
      for (const pair of pairs) {
        for (const chunk of pair.toUpstream.splice(0)) pair.upstream.write(chunk);
        for (const chunk of pair.toClient.splice(0)) if (!pair.clientGone) pair.client.write(chunk);
        if (pair.clientGone) {
          // The server reads to the end, handles it, and closes on end of input.
          pair.upstream.end();
          abandoned.push(pair.upstreamClosed);
        }
      }
      await Promise.all(abandoned);
    },
    up() {
      mode = 'up';
    },
    accepted: () => acceptedCount,
    close() {
      cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
