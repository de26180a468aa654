// What a postgres:// URL asks of the connection, honoured the way libpq
// (psql) honours it, for every connection the project opens: the gateway's
// pool, db:migrate's policies and password, db:audit.
//
//   sslmode       disable: no TLS. require: TLS, certificate not checked
//                 (checked against sslrootcert when one is given, as libpq
//                 does). verify-ca: TLS, certificate chain checked against
//                 sslrootcert. verify-full: chain and host name checked, against
//                 sslrootcert or, without one (or with sslrootcert=system),
//                 Node's CA store. Absent: no TLS (node-postgres's default;
//                 libpq's would be prefer). allow and prefer are refused:
//                 node-postgres cannot fall back to an unencrypted connection,
//                 so they cannot mean what they say.
//   channel_binding  disable: plain SCRAM-SHA-256. prefer (the default):
//                 SCRAM-SHA-256-PLUS when the server offers it over TLS.
//                 require: SCRAM-SHA-256-PLUS or no connection — a server (or
//                 a pooler) that offers only SCRAM-SHA-256, asks for a
//                 password in clear text or MD5, or asks for none, is refused.
//
// node-postgres's own reading of sslmode differs (require means verify-full,
// channel_binding is ignored): pg-connection-string's libpq-compatible mode
// is what is used here.
import pg from 'pg';
import { parse } from 'pg-connection-string';

export type ChannelBinding = 'disable' | 'prefer' | 'require';

export interface ConnectionSettings {
  /** Everything node-postgres needs; no connectionString. */
  config: pg.ClientConfig;
  channelBinding: ChannelBinding;
  /** A pg.Client class that enforces channel_binding=require. */
  Client: typeof pg.Client;
}

export class ConnectionUrlError extends Error {}

const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'];
const CHANNEL_BINDINGS = ['disable', 'prefer', 'require'];

/** Reads sslmode and channel_binding from url; throws ConnectionUrlError for what cannot be honoured. */
export function connectionSettings(url: string, BaseClient: typeof pg.Client = pg.Client): ConnectionSettings {
  const parsed = new URL(url);
  const params = parsed.searchParams;
  const sslmode = params.get('sslmode');
  if (sslmode !== null && !SSL_MODES.includes(sslmode)) {
    throw new ConnectionUrlError(
      sslmode === 'prefer' || sslmode === 'allow'
        ? `sslmode=${sslmode} is not supported: the driver cannot fall back to an unencrypted connection; use sslmode=require (or verify-full) for TLS, or sslmode=disable`
        : `sslmode=${sslmode} is not one of ${SSL_MODES.join(', ')}`,
    );
  }
  const channelBinding = (params.get('channel_binding') ?? 'prefer') as ChannelBinding;
  if (!CHANNEL_BINDINGS.includes(channelBinding)) {
    throw new ConnectionUrlError(`channel_binding=${channelBinding} is not one of ${CHANNEL_BINDINGS.join(', ')}`);
  }
  if (channelBinding === 'require' && (sslmode === null || sslmode === 'disable')) {
    throw new ConnectionUrlError('channel_binding=require needs TLS: add sslmode=require (or verify-full)');
  }
  // libpq's sslrootcert=system: the platform's CA store, which is Node's default.
  if (params.get('sslrootcert') === 'system') params.delete('sslrootcert');
  params.delete('channel_binding');

  let options;
  try {
    options = parse(parsed.toString(), { useLibpqCompat: true });
  } catch (error) {
    throw new ConnectionUrlError((error as Error).message.replace(/^SECURITY WARNING: /, ''));
  }
  const { sslmode: _sslmode, sslrootcert: _root, uselibpqcompat: _compat, ...config } = options;
  const ssl = config.ssl;
  return {
    config: {
      ...(config as pg.ClientConfig),
      // Channel binding needs TLS; over plain TCP it would only confuse the server.
      enableChannelBinding: Boolean(ssl) && channelBinding !== 'disable',
    } as pg.ClientConfig,
    channelBinding,
    Client: channelBinding === 'require' ? requiringChannelBinding(BaseClient) : BaseClient,
  };
}

/** Options for new pg.Client / pg.Pool from a URL (with the Client class to use). */
export function clientOptions(url: string): pg.ClientConfig & { Client: typeof pg.Client } {
  const { config, Client } = connectionSettings(url);
  return { ...config, Client };
}

/** A connected client for url, honouring sslmode and channel_binding. */
export async function connectClient(url: string): Promise<pg.Client> {
  const { Client, ...config } = clientOptions(url);
  const client = new Client(config);
  await client.connect();
  return client;
}

/** The internals of pg.Client the check hooks into (stable across node-postgres 8). */
interface ClientInternals {
  connection: { emit(event: 'error', error: Error): void; stream: { destroy(): void } };
  saslSession?: { mechanism: string } | null;
  _connecting: boolean;
  _handleAuthSASL(message: { mechanisms: string[] }): void;
  _handleAuthSASLFinal(message: unknown): void;
  _handleAuthCleartextPassword(message: unknown): void;
  _handleAuthMD5Password(message: unknown): void;
  _handleReadyForQuery(message: unknown): void;
}

export class ChannelBindingError extends Error {}

function requiringChannelBinding(Base: typeof pg.Client): typeof pg.Client {
  const refuse = (client: ClientInternals, why: string) => {
    client.connection.emit('error', new ChannelBindingError(`channel_binding=require: ${why}; connection refused`));
    client.connection.stream.destroy();
  };

  class ChannelBoundClient extends Base {
    private boundChannel = false;
  }
  const proto = ChannelBoundClient.prototype as unknown as ClientInternals & { boundChannel: boolean };
  const base = Base.prototype as unknown as ClientInternals;
  proto._handleAuthSASL = function (this: ClientInternals, message) {
    if (!message.mechanisms.includes('SCRAM-SHA-256-PLUS')) {
      return refuse(this, `the server offered ${message.mechanisms.join(', ')} but not SCRAM-SHA-256-PLUS`);
    }
    base._handleAuthSASL.call(this, message);
  };
  proto._handleAuthSASLFinal = function (this: ClientInternals & { boundChannel: boolean }, message) {
    this.boundChannel = this.saslSession?.mechanism === 'SCRAM-SHA-256-PLUS';
    base._handleAuthSASLFinal.call(this, message);
  };
  proto._handleAuthCleartextPassword = function (this: ClientInternals) {
    refuse(this, 'the server asked for a clear-text password');
  };
  proto._handleAuthMD5Password = function (this: ClientInternals) {
    refuse(this, 'the server asked for an MD5 password');
  };
  proto._handleReadyForQuery = function (this: ClientInternals & { boundChannel: boolean }, message) {
    if (this._connecting && !this.boundChannel) {
      return refuse(this, 'the server authenticated the connection without SCRAM-SHA-256-PLUS');
    }
    base._handleReadyForQuery.call(this, message);
  };
  return ChannelBoundClient;
}
