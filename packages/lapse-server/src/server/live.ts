import type { Clock } from 'lapse/internal';
import { parseDuration } from 'lapse/internal';
import type { Logger } from 'lapse/internal';
import type { SessionStore } from 'lapse/internal';
import { type LiveConnections, type MountOptions, mountLiveConnections } from 'lapse/socket.io';
import type { FailureLimit, TrackerOptions } from 'lapse/internal';
import type { PresenceRegistry } from 'lapse/internal';
import type { RedisRegistry } from 'lapse/redis';
import { parseBackendUrl } from './backend.js';
import type { ServerConfig } from './config.js';
import type { ConnectionStats, ConnectionsProvider } from './context.js';
import { roomTimeoutOf, socketServerOptions } from './socket-settings.js';

/** What code may pass as createServer's `liveConnections`: tracker options (not the store) and Socket.IO server options. */
export type LiveConnectionOptions = Omit<MountOptions, 'store'>;

/** The service's Socket.IO endpoint, with what it owns. */
export interface ServiceSockets {
  live: LiveConnections;
  connections: ConnectionsProvider;
  close(): Promise<void>;
}

/**
 * Mounts Socket.IO at /socket.io/ on the service's HTTP server with the live-connection
 * settings: authenticated handshakes (through the failure limit), idle cuts, and on a Redis
 * backend (redis:// or redis-cluster://) a RedisRegistry so that /health/connections is cluster-wide.
 */
export async function mountServiceSockets(opts: {
  server: import('node:http').Server;
  store: SessionStore;
  config: ServerConfig;
  limiter: FailureLimit | null;
  clock: Clock;
  logger: Logger;
  extra: LiveConnectionOptions;
}): Promise<ServiceSockets> {
  const { config: c, extra } = opts;
  const registry = extra.registry ?? (await ownRegistry(c, opts.logger));
  const rooms = c.socketRoomTimeouts;
  const tracker: TrackerOptions = {
    clock: opts.clock,
    requireSession: c.socketRequireSession,
    idleTimeout: c.socketIdleTimeout,
    warnBefore: Math.min(parseDuration(c.socketWarnBefore), Math.floor(parseDuration(c.socketIdleTimeout) / 2)),
    ...(rooms.length > 0 ? { idleTimeoutFor: (conn: { rooms: string[] }) => roomTimeoutOf(rooms, conn.rooms) } : {}),
    ...(opts.limiter ? { failureLimit: opts.limiter } : {}),
    ...(registry ? { registry } : {}),
  };
  let live: LiveConnections;
  try {
    live = mountLiveConnections(opts.server, {
      store: opts.store,
      logger: opts.logger,
      ...tracker,
      ...extra,
      serverOptions: { ...socketServerOptions(c), ...extra.serverOptions },
    });
  } catch (err) {
    if (registry && !extra.registry) await (registry as RedisRegistry).close();
    throw err;
  }
  const own = live.tracker;
  const connections: ConnectionsProvider = registry && isRedisRegistry(registry)
    ? {
        async stats(): Promise<ConnectionStats> {
          // This node's own changes are in before the cluster figures are read.
          await registry.flush();
          const { nodes, ...cluster } = await registry.stats();
          return { ...cluster, nodes, node: { nodeId: registry.nodeId, ...own.stats() } };
        },
      }
    : { stats: () => ({ ...own.stats(), nodes: 1, node: { nodeId: null, ...own.stats() } }) };
  let closing: Promise<void> | undefined;
  return {
    live,
    connections,
    close() {
      closing ??= (async () => {
        try {
          await live.close();
        } finally {
          if (registry && !extra.registry && isRedisRegistry(registry)) await registry.close();
        }
      })();
      return closing;
    },
  };
}

function isRedisRegistry(r: PresenceRegistry): r is RedisRegistry {
  return typeof (r as Partial<RedisRegistry>).stats === 'function' && typeof (r as Partial<RedisRegistry>).flush === 'function';
}

// Loaded only on a Redis backend, like the backend itself (see backend.ts).
const REGISTRY_MODULE: string = 'lapse/redis';

async function ownRegistry(c: ServerConfig, logger: Logger): Promise<RedisRegistry | undefined> {
  const target = parseBackendUrl(c.backend);
  if ((target.kind !== 'redis' && target.kind !== 'redis-cluster') || !c.socketPresence) return undefined;
  const { RedisRegistry: Registry } = (await import(REGISTRY_MODULE)) as typeof import('lapse/redis');
  const where = target.kind === 'redis' ? { url: target.url } : { cluster: target.nodes };
  return new Registry({ ...where, prefix: c.redisPrefix ?? 'lapse:', logger: logger.child?.({ component: 'presence' }) ?? logger });
}
