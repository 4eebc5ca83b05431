import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { isLapseError } from '../src/core/errors.js';
import { silentLogger } from '../src/util/logger.js';
import { type ConnectionTracker, trackConnections } from '../src/socket.io/index.js';
import { RedisRegistry } from '../src/socket.io/registry.js';
import { ask, startServer, type TestServer } from './fixtures/socketio-harness.js';
import { describeRedis, freePort, randomPrefix, type RedisServer, startRedis } from '../../../test/helpers/redis-server.js';
import type { Logger } from '../src/util/logger.js';

describeRedis('RedisRegistry on a real redis-server', () => {
  let redis: RedisServer;
  let server: TestServer;
  let tracker: ConnectionTracker;
  let registry: RedisRegistry;
  let reader: RedisRegistry;
  let prefix: string;
  let warnings: string[];
  const recording: Logger = {
    ...silentLogger,
    warn: (_obj, msg) => {
      warnings.push(msg ?? '');
    },
  };

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  async function setup(): Promise<void> {
    prefix = randomPrefix();
    warnings = [];
    server = await startServer();
    server.io.use((socket, next) => {
      socket.data.userId = socket.handshake.auth.userId as string;
      next();
    });
    registry = new RedisRegistry({ url: redis.url, prefix, nodeId: 'n1', leaseTtl: 600, logger: recording });
    tracker = trackConnections(server.io, { registry, logger: silentLogger });
    reader = new RedisRegistry({ url: redis.url, prefix, logger: silentLogger });
  }
  afterEach(async () => {
    await tracker?.close();
    await registry?.close();
    await reader?.close();
    await server?.close();
  });

  /** The registry must end up saying what the tracker says. */
  const mirrors = () =>
    expect.poll(async () => {
      const { nodes: _, ...s } = await reader.stats().catch(() => ({ nodes: -1 }) as never);
      return s;
    }, { timeout: 8000, interval: 50 });

  it('mirrors the tracker, and re-registers after its lease was lost', async () => {
    await setup();
    const a = await server.connected({ auth: { userId: 'ann' } });
    const b = await server.connected({ auth: { userId: 'ben' } });
    await ask(a, 'join', 'r1');
    await ask(b, 'join', 'r1');
    await mirrors().toEqual(tracker.stats());
    expect(tracker.stats()).toMatchObject({ totalSessions: 2, activeRooms: 1 });

    // The node looks dead (its lease vanished): readers drop it at once, its heartbeat brings it back.
    const raw = new Redis(redis.url);
    await raw.del(`{${prefix}presence}:n:n1:lease`);
    expect((await reader.stats()).totalSessions).toBe(0);
    await mirrors().toEqual(tracker.stats());
    expect(await reader.nodes()).toEqual(['n1']);
    expect(warnings.some((w) => /re-registering/.test(w))).toBe(true);
    raw.disconnect();
  });

  it('rebuilds its part after Redis restarts empty, including changes made while it was down', async () => {
    await setup();
    const a = await server.connected({ auth: { userId: 'ann' } });
    await ask(a, 'join', 'lobby');
    await mirrors().toEqual(tracker.stats());

    await redis.stop();
    const b = await server.connected({ auth: { userId: 'ben' } });
    await ask(b, 'join', 'match');
    a.disconnect();
    await redis.restart();
    await mirrors().toEqual({ totalSessions: 1, uniqueUsers: 1, activeRooms: 1, sessionsPerRoom: { match: 1 } });
    expect(tracker.stats()).toEqual({ totalSessions: 1, uniqueUsers: 1, activeRooms: 1, sessionsPerRoom: { match: 1 } });
    expect(warnings.some((w) => /re-registering|rebuilding/.test(w))).toBe(true);
  });

  it('close() takes the node out of presence', async () => {
    await setup();
    await server.connected({ auth: { userId: 'ann' } });
    await mirrors().toMatchObject({ totalSessions: 1 });
    await tracker.close();
    await registry.close();
    await registry.close();
    expect(await reader.stats()).toEqual({ totalSessions: 0, uniqueUsers: 0, activeRooms: 0, sessionsPerRoom: {}, nodes: 0 });
  });

  it('a read while Redis is down is LAPSE_BACKEND_UNAVAILABLE, not an empty cluster', async () => {
    // Nothing listens on this port.
    const client = new Redis(`redis://127.0.0.1:${await freePort()}`, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    client.on('error', () => {});
    const offline = new RedisRegistry({ client, prefix: randomPrefix(), logger: silentLogger });
    const err = await offline.stats().catch((e: unknown) => e);
    expect(isLapseError(err, 'LAPSE_BACKEND_UNAVAILABLE')).toBe(true);
    await offline.close();
    client.disconnect();
  });

  it('with its own client it keeps the store\'s policy: while Redis is down a read fails within the command timeout, then recovers', { timeout: 60_000 }, async () => {
    await setup();
    const c = await server.connected({ auth: { userId: 'ann' } });
    await mirrors().toMatchObject({ totalSessions: 1 });
    await redis.stop();
    try {
      // Bounded: the connection wait is the command timeout, never ioredis's endless retries.
      const err = await reader.stats().catch((e: unknown) => e);
      expect(isLapseError(err, 'LAPSE_BACKEND_UNAVAILABLE')).toBe(true);
      // Through RedisConnection (calls named 'redis <what>'), the store's policy: no offline queue, a bounded wait.
      expect(String((err as Error).cause)).toMatch(/^Error: redis presence: /);
      const again = await reader.userConnections('ann').catch((e: unknown) => e);
      expect(isLapseError(again, 'LAPSE_BACKEND_UNAVAILABLE')).toBe(true);
    } finally {
      await redis.restart();
    }
    // Redis came back empty: the node rebuilds its part and the figures are exact again.
    await mirrors().toMatchObject({ totalSessions: 1, uniqueUsers: 1 });
    c.disconnect();
    await mirrors().toMatchObject({ totalSessions: 0 });
  });
});
