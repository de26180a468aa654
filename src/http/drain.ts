// Shutdown as a load balancer expects it. On SIGTERM the server first
// *drains*: /health/ready answers 503 at once so the balancer stops sending
// new traffic, while every request is still served for the grace period
// (the balancer needs a few health checks to notice). Then it *closes*: no
// new connections, in-flight requests finish, and a request that still
// arrives on an open connection is refused with a problem (503, Retry-After).
// Throughout, every response carries `Connection: close`, so each keep-alive
// connection ends cleanly after its next response instead of being reset.
import type { FastifyInstance } from 'fastify';
import { ProblemError, sendProblem } from './problem.js';

export type DrainPhase = 'serving' | 'draining' | 'closing';

export class DrainState {
  phase: DrainPhase = 'serving';

  get stopping(): boolean {
    return this.phase !== 'serving';
  }
}

export function registerDrain(app: FastifyInstance, drain: DrainState) {
  app.addHook('onRequest', (_request, reply, done) => {
    if (drain.phase === 'closing') {
      reply.header('Connection', 'close');
      sendProblem(reply, shuttingDown());
      return;
    }
    done();
  });
  app.addHook('onSend', (_request, reply, _payload, done) => {
    if (drain.stopping) reply.header('Connection', 'close');
    done();
  });
}

/** "Not attempted": this instance is shutting down; another (or this one, restarted) will answer. */
export function shuttingDown(): ProblemError {
  return new ProblemError('unavailable', 'The server is shutting down; the request was not attempted. Retry.', {
    headers: { 'Retry-After': '1' },
  });
}
