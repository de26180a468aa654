// Fail fast while the database is known to be down. The first request to
// meet an outage waits out the whole connection-retry budget (a Neon compute
// waking from scale-to-zero is still waited for); once a request has failed
// for the whole budget the gate shuts: further requests are refused at once
// ("not attempted", with Retry-After) instead of each waiting the budget
// out, and a single background probe retries with backoff. The probe's first
// success opens the gate again.
export interface ConnectionGateOptions {
  /** Opens (and releases) one connection; rejects when the database cannot be reached. */
  probe: () => Promise<void>;
  /** First wait between probes; doubles up to maxProbeDelayMs. */
  firstProbeDelayMs?: number;
  maxProbeDelayMs?: number;
  /** Told when the gate shuts (true) and when it opens again (false), for the log. */
  onChange?: (shut: boolean) => void;
}

export interface ConnectionGate {
  /** When shut: how many seconds a client should wait before retrying; undefined while open. */
  retryAfterSeconds(): number | undefined;
  /** A request failed to connect for the whole retry budget. */
  connectFailed(): void;
  /** Stops the probe (shutdown). */
  close(): void;
}

export function createConnectionGate(options: ConnectionGateOptions): ConnectionGate {
  const firstDelay = options.firstProbeDelayMs ?? 250;
  const maxDelay = options.maxProbeDelayMs ?? 5_000;
  let shut = false;
  let closed = false;
  let nextProbeAt = 0;
  let timer: NodeJS.Timeout | undefined;

  const schedule = (delay: number) => {
    nextProbeAt = Date.now() + delay;
    timer = setTimeout(() => {
      timer = undefined;
      options.probe().then(
        () => {
          shut = false;
          options.onChange?.(false);
        },
        () => {
          if (!closed) schedule(Math.min(delay * 2, maxDelay));
        },
      );
    }, delay);
    timer.unref();
  };

  return {
    retryAfterSeconds() {
      if (!shut) return undefined;
      return Math.max(1, Math.ceil((nextProbeAt - Date.now()) / 1000));
    },
    connectFailed() {
      if (shut || closed) return;
      shut = true;
      options.onChange?.(true);
      schedule(firstDelay);
    },
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
