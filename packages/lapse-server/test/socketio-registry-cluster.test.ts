/**
 * The presence registry on a real Redis Cluster (3 masters + 3 replicas): a registry built
 * from seed nodes or from an ioredis Cluster mirrors its tracker, keeps every key in one
 * slot, re-registers after a lost lease and leaves on close; and two service nodes on
 * redis-cluster:// answer cluster-wide figures on /health/connections.
 */
import { Cluster, Redis } from 'ioredis';
import { io, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { silentLogger } from 'lapse/internal';
import { createServer, type LapseServer } from '../src/server/index.js';
import { type ConnectionTracker, trackConnections } from 'lapse/socket.io';
import { RedisRegistry } from 'lapse/redis';
import { ask, startServer, type TestServer } from '../../lapse/test/fixtures/socketio-harness.js';
import { type RedisCluster, useRedisCluster } from '../../../test/helpers/redis-cluster.js';
import { describeRedis, randomPrefix } from '../../../test/helpers/redis-server.js';
import { tempDir } from '../../../test/helpers/tmp.js';

/** Keys matching `pattern` on each node (SCAN, bounded by the test's own key count), by port. */
async function keysPerNode(ports: number[], pattern: string): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const port of ports) {
    const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
    await c.connect();
    try {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, found] = await c.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        keys.push(...found);
      } while (cursor !== '0');
      out.set(port, keys);
    } finally {
      c.disconnect();
    }
  }
  return out;
}

describeRedis('RedisRegistry on a real Redis Cluster', () => {
  const getCluster = useRedisCluster();
  let cluster: RedisCluster;
  let server: TestServer | undefined;
  let tracker: ConnectionTracker | undefined;
  let registry: RedisRegistry | undefined;
  let reader: RedisRegistry | undefined;
  let client: Cluster | undefined;
  let prefix: string;

  beforeAll(() => {
    cluster = getCluster();
  });
  afterEach(async () => {
    await tracker?.close();
    await registry?.close();
    await reader?.close();
    await server?.close();
    client?.disconnect();
    tracker = registry = reader = server = client = undefined;
  });

  async function setup(): Promise<void> {
    prefix = randomPrefix();
    server = await startServer();
    server.io.use((socket, next) => {
      socket.data.userId = socket.handshake.auth.userId as string;
      next();
    });
    // The node's registry owns a Cluster client made from seed nodes; the reader uses a caller's Cluster.
    registry = new RedisRegistry({ cluster: cluster.urls, prefix, nodeId: 'n1', leaseTtl: 600, logger: silentLogger });
    tracker = trackConnections(server.io, { registry, logger: silentLogger });
    client = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })));
    reader = new RedisRegistry({ client, prefix, logger: silentLogger });
  }

  const mirrors = () =>
    expect.poll(async () => {
      const { nodes: _, ...s } = await (reader as RedisRegistry).stats().catch(() => ({ nodes: -1 }) as never);
      return s;
    }, { timeout: 8000, interval: 50 });

  it('mirrors the tracker with every key in one slot, and re-registers after its lease was lost', async () => {
    await setup();
    const s = server as TestServer;
    const a = await s.connected({ auth: { userId: 'ann' } });
    const b = await s.connected({ auth: { userId: 'ben' } });
    const c = await s.connected({ auth: { userId: 'ann' } });
    await ask(a, 'join', 'r1');
    await ask(b, 'join', 'r1');
    await ask(c, 'join', 'r2');
    await mirrors().toEqual((tracker as ConnectionTracker).stats());
    expect((tracker as ConnectionTracker).stats()).toMatchObject({ totalSessions: 3, uniqueUsers: 2, activeRooms: 2 });
    expect(await (reader as RedisRegistry).userConnections('ann')).toBe(2);
    expect(await (reader as RedisRegistry).roomConnections('r1')).toBe(2);
    expect(await (reader as RedisRegistry).isOnline('ben')).toBe(true);

    // Every key of the registry is on one master, in one slot (the scripts are atomic over them).
    const found = await keysPerNode(await cluster.masters(), `{${prefix}presence}:*`);
    const holders = [...found].filter(([, keys]) => keys.length > 0);
    expect(holders).toHaveLength(1);
    const keys = (holders[0] as [number, string[]])[1];
    expect(keys).toContain(`{${prefix}presence}:n:n1:lease`);
    const slots = new Set(await Promise.all(keys.map((k) => (client as Cluster).cluster('KEYSLOT', k))));
    expect(slots.size).toBe(1);

    // The node looks dead (its lease vanished): readers drop it at once, its heartbeat brings it back.
    await (client as Cluster).del(`{${prefix}presence}:n:n1:lease`);
    expect((await (reader as RedisRegistry).stats()).totalSessions).toBe(0);
    await mirrors().toEqual((tracker as ConnectionTracker).stats());
    expect(await (reader as RedisRegistry).nodes()).toEqual(['n1']);

    b.disconnect();
    await mirrors().toEqual({ totalSessions: 2, uniqueUsers: 1, activeRooms: 2, sessionsPerRoom: { r1: 1, r2: 1 } });
  });

  it('close() takes the node out of presence and leaves no connection keys', async () => {
    await setup();
    await (server as TestServer).connected({ auth: { userId: 'ann' } });
    await mirrors().toMatchObject({ totalSessions: 1 });
    await tracker?.close();
    await registry?.close();
    await registry?.close();
    expect(await (reader as RedisRegistry).stats()).toEqual({ totalSessions: 0, uniqueUsers: 0, activeRooms: 0, sessionsPerRoom: {}, nodes: 0 });
    const left = [...(await keysPerNode(await cluster.masters(), `{${prefix}presence}:n:*`)).values()].flat();
    expect(left).toEqual([]);
  });
});

describeRedis('two service nodes on redis-cluster://', () => {
  const getCluster = useRedisCluster();
  const apps: LapseServer[] = [];
  const sockets: Socket[] = [];
  const urls: string[] = [];
  let admin: Record<string, string>;
  let cleanup: () => void = () => {};

  beforeAll(async () => {
    const cluster = getCluster();
    const tmp = tempDir('lapse-srv-cluster-presence-');
    cleanup = tmp.cleanup;
    const backend = `redis-cluster://${cluster.ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
    const redisPrefix = randomPrefix();
    const adminKey = `lapse_admin_${'p'.repeat(43)}`;
    for (const name of ['a', 'b']) {
      const app = await createServer({ backend, redisPrefix, adminKey, dataDir: `${tmp.dir}/${name}`, logLevel: 'silent', sweepInterval: 'off' });
      apps.push(app);
      await app.listen({ host: '127.0.0.1', port: 0 });
      urls.push(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`);
    }
    admin = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
  }, 60_000);

  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    for (const app of apps) await app.close();
    cleanup();
  });

  async function token(userId: string): Promise<string> {
    const r = await fetch(`${urls[0]}/v1/sessions`, { method: 'POST', headers: admin, body: JSON.stringify({ userId }) });
    expect(r.status).toBe(201);
    return ((await r.json()) as { token: string }).token;
  }

  function connect(url: string, auth: Record<string, unknown>): Promise<Socket> {
    const s = io(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
    sockets.push(s);
    return new Promise((resolve, reject) => {
      s.once('connect', () => resolve(s));
      s.once('connect_error', reject);
    });
  }

  async function connections(url: string): Promise<{ totalSessions: number; uniqueUsers: number; nodes: number; node: { nodeId: string | null; totalSessions: number } }> {
    const r = await fetch(`${url}/health/connections`, { headers: admin });
    expect(r.status).toBe(200);
    return (await r.json()) as never;
  }

  it('/health/connections on either node counts the sockets of both', { timeout: 60_000 }, async () => {
    const [a, b] = urls as [string, string];
    await connect(a, { token: await token('u1') });
    await connect(a, { token: await token('u2') });
    const last = await connect(b, { token: await token('u3') });
    for (const [url, own] of [[a, 2], [b, 1]] as const) {
      await expect
        .poll(async () => {
          const c = await connections(url);
          return [c.totalSessions, c.uniqueUsers, c.nodes, c.node.totalSessions];
        }, { timeout: 10_000, interval: 100 })
        .toEqual([3, 3, 2, own]);
    }
    expect((await connections(a)).node.nodeId).not.toBe((await connections(b)).node.nodeId);
    last.disconnect();
    await expect.poll(async () => (await connections(a)).totalSessions, { timeout: 10_000, interval: 100 }).toBe(2);
  });
});
