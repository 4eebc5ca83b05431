/** One live connection as a registry mirrors it. */
export interface PresenceEntry {
  sid: string;
  userId: string | null;
  rooms: Iterable<string>;
}

/** Where a registry reads the full local state when it must rebuild its copy (start, lost lease, reconnect). */
export interface PresenceSource {
  entries(): Iterable<PresenceEntry>;
}

/**
 * What the tracker tells a cluster registry, in order, as connections come and go.
 * RedisRegistry (lapse/redis) implements it; the tracker does not load ioredis itself.
 */
export interface PresenceRegistry {
  /** Starts mirroring a tracker: the registry copies `source` and then follows the calls below. */
  attach(source: PresenceSource): void;
  /** Stops mirroring; this node's connections leave presence. */
  detach(): void;
  connected(sid: string, userId: string | null): void;
  disconnected(sid: string): void;
  joined(sid: string, room: string): void;
  left(sid: string, room: string): void;
}

/** Cluster-wide figures, the same shape as tracker.stats() plus the live node count. */
export interface ClusterStats {
  totalSessions: number;
  uniqueUsers: number;
  activeRooms: number;
  sessionsPerRoom: Record<string, number>;
  nodes: number;
}
