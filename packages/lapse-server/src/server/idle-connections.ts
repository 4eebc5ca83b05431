import type { FastifyInstance } from 'fastify';

/** How often, while the service shuts down, connections that have gone idle are closed. */
const SWEEP_MS = 25;

/**
 * Lets a shutdown finish as soon as its in-flight requests have. Node closes the keep-alive
 * connections that are idle when the server stops (Fastify's `forceCloseConnections: 'idle'`),
 * but one whose request was still in flight then (a write waiting for its group commit, a
 * backend round trip) goes idle a moment later, and Node keeps it open until its keep-alive
 * timeout: the shutdown waited for that, past its own deadline. From the first close hook
 * until the server has closed, such connections are closed as they go idle.
 */
export function closeIdleConnectionsOnClose(app: FastifyInstance): void {
  let timer: NodeJS.Timeout | undefined;
  app.addHook('preClose', (done) => {
    timer ??= setInterval(() => app.server.closeIdleConnections(), SWEEP_MS);
    timer.unref();
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    clearInterval(timer);
    done();
  });
}
