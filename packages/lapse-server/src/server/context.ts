import type { FastifyInstance } from 'fastify';
import type { Clock } from 'lapse/internal';
import type { LiveConnections } from 'lapse/socket.io';
import type { SessionStore } from 'lapse/internal';
import type { ServerConfig } from './config.js';
import type { KeyRing } from './keys.js';
import type { ServerMetrics } from './metrics.js';
import type { FailureLimit } from './rate-limit.js';

/** Live-connection counts, as the Socket.IO tracker's `stats()` gives them. */
export interface ConnectionStats {
  totalSessions: number;
  uniqueUsers: number;
  activeRooms: number;
  sessionsPerRoom: Record<string, number>;
  /** Live nodes counted (1 without cluster presence). */
  nodes?: number;
  /** This node's own figures; `nodeId` is the presence registry's id, null without one. */
  node?: { nodeId: string | null; totalSessions: number; uniqueUsers: number; activeRooms: number; sessionsPerRoom: Record<string, number> };
}

/** Anything that can tell /health/connections the live-connection counts (the tracker). */
export interface ConnectionsProvider {
  stats(): ConnectionStats | Promise<ConnectionStats>;
}

/** What /health/connections answers until a tracker is attached. */
export const NO_CONNECTIONS: ConnectionStats = Object.freeze({
  totalSessions: 0,
  uniqueUsers: 0,
  activeRooms: 0,
  sessionsPerRoom: Object.freeze({}) as Record<string, number>,
});

/** Everything the routes share, reachable as `app.lapse`. */
export interface LapseContext {
  readonly config: ServerConfig;
  readonly store: SessionStore;
  readonly keys: KeyRing;
  readonly metrics: ServerMetrics;
  /** The failed-token-check limit (HTTP routes and the Socket.IO handshake share it); null when off. */
  readonly limiter: FailureLimit | null;
  readonly clock: Clock;
  /** The admin key made on this start (to print once), or null. */
  readonly generatedAdminKey: string | null;
  /** Set by the Socket.IO integration once it is mounted on `app.server`. */
  connections: ConnectionsProvider | null;
  /** Socket.IO at /socket.io/ and its tracker (null when `liveConnections: false`): add your events in `onReady`. */
  live: LiveConnections | null;
}

/** The service: a Fastify instance with its Lapse context. */
export type LapseServer = FastifyInstance & { readonly lapse: LapseContext };
