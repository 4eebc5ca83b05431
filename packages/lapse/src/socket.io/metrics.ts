import type * as PromClient from 'prom-client';
import type { Registry } from 'prom-client';
import { requirePeer } from '../util/peer.js';

export interface MetricsOptions {
  /** Metric name prefix; default 'lapse_socketio_'. */
  prefix?: string;
  /** Per-room gauges for at most this many rooms, the largest first (bounds label cardinality); default 100, 0 = none. */
  maxRoomLabels?: number;
}

/** What the gauges read at scrape time. */
export interface MetricsSource {
  sizes(): { connections: number; users: number; rooms: number };
  stats(): { sessionsPerRoom: Record<string, number> };
  totals(): { connected: number; disconnected: number; warned: number; expired: number };
}

/**
 * Registers the tracker's gauges and counters on a prom-client registry. Values are read
 * in `collect`, at scrape time, so nothing runs between scrapes.
 */
export function registerTrackerMetrics(registry: Registry, source: MetricsSource, opts: MetricsOptions = {}): void {
  const { Counter, Gauge } = requirePeer<typeof PromClient>('prom-client', 'lapse/socket.io metrics');
  const p = opts.prefix ?? 'lapse_socketio_';
  const maxRooms = opts.maxRoomLabels ?? 100;
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name: p + name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name: p + name,
      help,
      registers: [registry],
      collect() {
        // The tracker keeps the running total; the counter mirrors it.
        this.reset();
        this.inc(read());
      },
    });
  gauge('connections', 'Live Socket.IO connections on this node.', () => source.sizes().connections);
  gauge('users', 'Users with at least one live connection on this node.', () => source.sizes().users);
  gauge('rooms', 'Rooms with at least one live connection on this node.', () => source.sizes().rooms);
  new Gauge({
    name: `${p}room_connections`,
    help: `Live connections per room (the ${maxRooms} largest rooms).`,
    labelNames: ['room'],
    registers: [registry],
    collect() {
      this.reset();
      if (maxRooms <= 0) return;
      const top = Object.entries(source.stats().sessionsPerRoom)
        .sort((a, b) => b[1] - a[1])
        .slice(0, maxRooms);
      for (const [room, n] of top) this.set({ room }, n);
    },
  });
  counter('connected_total', 'Connections tracked since start.', () => source.totals().connected);
  counter('disconnected_total', 'Connections gone since start.', () => source.totals().disconnected);
  counter('warnings_total', 'session_expiring warnings sent.', () => source.totals().warned);
  counter('expired_total', 'Connections cut for idleness.', () => source.totals().expired);
}
