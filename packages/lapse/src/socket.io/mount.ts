import type { Server as HttpServer } from 'node:http';
import type * as SocketIo from 'socket.io';
import type { Server, ServerOptions } from 'socket.io';
import { requirePeer } from '../util/peer.js';
import { backendError } from '../core/errors.js';
import type { TrackerOptions } from './options.js';
import { recommendedServerOptions } from './server-options.js';
import { type ConnectionTracker, trackConnections } from './tracker.js';

/** mountLiveConnections' options: the tracker's, plus Socket.IO server options (merged over the recommended ones). */
export type MountOptions = TrackerOptions & { serverOptions?: Partial<ServerOptions> };

/** What mountLiveConnections returns. */
export interface LiveConnections {
  io: Server;
  tracker: ConnectionTracker;
  /** Stops tracking and disconnects every socket; leaves the HTTP server to its owner. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Mounts Socket.IO (recommended options, path `/socket.io/`) on an HTTP server that someone
 * else owns, such as Fastify's `app.server`, and tracks its connections.
 * @example
 * const live = mountLiveConnections(app.server, { store, requireSession: true });
 * app.addHook('onClose', () => live.close());
 * app.get('/health/connections', () => live.tracker.stats());
 */
export function mountLiveConnections(
  httpServer: HttpServer,
  options: MountOptions = {},
): LiveConnections {
  const { serverOptions, ...trackerOptions } = options;
  const opts: Partial<ServerOptions> = { ...recommendedServerOptions, path: '/socket.io/', ...serverOptions };
  // With a store, a recovering socket must pass the handshake check again (the tracker
  // disconnects one that skipped it when a session is required).
  if (opts.connectionStateRecovery && trackerOptions.store) {
    opts.connectionStateRecovery = { ...opts.connectionStateRecovery, skipMiddlewares: false };
  }
  const { Server: IoServer } = requirePeer<typeof SocketIo>('socket.io', 'lapse/socket.io');
  const io = new IoServer(httpServer, opts);
  let tracker: ConnectionTracker;
  try {
    tracker = trackConnections(io, trackerOptions);
  } catch (err) {
    io.engine.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  const shutdown = async (): Promise<void> => {
    const errors: unknown[] = [];
    await tracker.close().catch((err: unknown) => errors.push(err));
    try {
      // Not io.close(): that would also close the HTTP server, which belongs to the caller.
      io.local.disconnectSockets(true);
      io.engine.close();
    } catch (err) {
      errors.push(err);
    }
    if (errors.length > 0) throw backendError(errors[0], 'closing live connections failed');
  };
  return {
    io,
    tracker,
    close() {
      closing ??= shutdown();
      return closing;
    },
  };
}
