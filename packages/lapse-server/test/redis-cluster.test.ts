import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { redis } from 'lapse/redis';
import { bucketOfId, bucketOfUser } from '../../lapse/src/backends/redis/layout.js';
import { ManualClock } from 'lapse/internal';
import { isLapseError } from 'lapse/internal';
import { silentLogger } from 'lapse/internal';
import { describeBackend, parseBackendUrl } from '../src/server/backend.js';
import { createStore, type SessionStore } from 'lapse/internal';
import { type RedisCluster, useRedisCluster } from '../../../test/helpers/redis-cluster.js';
import { describeRedis, randomPrefix } from '../../../test/helpers/redis-server.js';

const T0 = 2_000_000_000_000;

/** Session keys under `prefix` on one node, by SCAN (bounded by the test's own key count). */
async function sessionKeysOn(port: number, prefix: string): Promise<number> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  await c.connect();
  try {
    let n = 0;
    let cursor = '0';
    do {
      const [next, keys] = await c.scan(cursor, 'MATCH', `${prefix}*:s:*`, 'COUNT', 1000);
      cursor = next;
      n += keys.length;
    } while (cursor !== '0');
    return n;
  } finally {
    c.disconnect();
  }
}

it('reads redis-cluster://[user:pass@]h:p,h:p as seed URLs and hides the password', () => {
  expect(parseBackendUrl('redis-cluster://10.0.0.1:7000,10.0.0.2:7001')).toEqual({
    kind: 'redis-cluster',
    nodes: ['redis://10.0.0.1:7000', 'redis://10.0.0.2:7001'],
  });
  expect(parseBackendUrl('redis-cluster://u:p@h1:1,h2:2')).toEqual({ kind: 'redis-cluster', nodes: ['redis://u:p@h1:1', 'redis://u:p@h2:2'] });
  expect(describeBackend('redis-cluster://u:secret@h1:1,h2:2')).toBe('redis-cluster://***@h1:1,h2:2');
  for (const bad of ['redis-cluster://', 'redis-cluster://h1', 'redis-cluster://h1:1,,h2:2']) {
    expect(() => parseBackendUrl(bad)).toThrow(/redis-cluster:\/\/host:port/);
  }
});

describeRedis('redis backend on a Redis Cluster', () => {
  const getCluster = useRedisCluster();
  let cluster: RedisCluster;
  const stores: SessionStore[] = [];
  beforeAll(() => {
    cluster = getCluster();
  });
  afterAll(async () => {
    for (const s of stores) await s.close();
  });

  function open(
    opts: { prefix?: string; clock?: ManualClock; durability?: { replicas: number; timeout?: string }; maxSessionsPerUser?: number } = {},
  ) {
    const backend = redis({ cluster: cluster.urls, prefix: opts.prefix ?? randomPrefix(), logger: silentLogger, durability: opts.durability });
    const store = createStore({
      backend,
      clock: opts.clock ?? new ManualClock(T0),
      sweepInterval: false,
      logger: silentLogger,
      maxSessionsPerUser: opts.maxSessionsPerUser,
    });
    stores.push(store);
    return { backend, store };
  }

  it('takes seed URLs or a Cluster client, and refuses a hash-tagged prefix and bad seeds', async () => {
    expect(() => redis({ cluster: [], logger: silentLogger })).toThrow(/at least one/);
    expect(() => redis({ cluster: ['http://x:1'], logger: silentLogger })).toThrow(/redis:\/\//);
    expect(() => redis({ cluster: cluster.urls, prefix: 'a:{b}:', logger: silentLogger })).toThrow(/hash tag/);
    const client = new Cluster([{ host: '127.0.0.1', port: cluster.ports[0] as number }], { enableOfflineQueue: true });
    const backend = redis({ client, prefix: randomPrefix(), logger: silentLogger });
    const store = createStore({ backend, sweepInterval: false, logger: silentLogger });
    const { token } = await store.create({ userId: 'c' });
    expect((await store.validate(token))?.userId).toBe('c');
    await store.close();
    expect(await client.ping()).toBe('PONG'); // a caller's client stays open
    client.disconnect();
  });

  it('spreads 3,000 sessions of 300 users within ±20 % per master, each user in one bucket', { timeout: 60_000 }, async () => {
    const prefix = randomPrefix();
    const { backend, store } = open({ prefix });
    for (let u = 0; u < 300; u++) {
      await Promise.all(Array.from({ length: 10 }, () => store.create({ userId: `user-${u}` })));
    }
    const masters = await cluster.masters();
    expect(masters).toHaveLength(3);
    const counts = await Promise.all(masters.map((p) => sessionKeysOn(p, prefix)));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(3000);
    for (const n of counts) expect(Math.abs(n - 1000), `per master: ${counts.join(', ')}`).toBeLessThanOrEqual(200);
    for (const u of [0, 77, 299]) {
      const list = await store.listUser(`user-${u}`);
      expect(list).toHaveLength(10);
      expect(new Set(list.map((s) => backend.layout.forId(s.id)))).toEqual(new Set([backend.layout.forUser(`user-${u}`)]));
    }
    expect(await store.size()).toBe(3000);
    expect((await store.stats()).users).toBe(300);
  });

  it('keeps per-user caps and revokeUser atomic under concurrent creates from two nodes', async () => {
    const prefix = randomPrefix();
    const a = open({ prefix, maxSessionsPerUser: 3 }).store;
    const b = open({ prefix, maxSessionsPerUser: 3 }).store;
    const made = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).create({ userId: 'busy' })));
    expect(made).toHaveLength(40);
    expect(await a.listUser('busy')).toHaveLength(3);
    // revokeUser racing creates: what is left afterwards was created after it, never a mix.
    const [revoked] = await Promise.all([b.revokeUser('busy'), ...Array.from({ length: 10 }, () => a.create({ userId: 'busy' }))]);
    expect(revoked).toBeGreaterThanOrEqual(0);
    expect((await a.listUser('busy')).length).toBeLessThanOrEqual(3);
    await a.revokeUser('busy');
    expect(await b.listUser('busy')).toEqual([]);
  });

  it("finds a user's set() session outside the user's bucket in listUser and revokeUser", async () => {
    const clock = new ManualClock(T0);
    const { store } = open({ clock });
    let n = 0;
    while (bucketOfId(`cart:${n}`) === bucketOfUser('shopper')) n++;
    const id = `cart:${n}`;
    const made = await store.create({ userId: 'shopper' });
    await clock.advance(1000);
    await store.set(id, { items: 1 }, { userId: 'shopper' });
    expect((await store.listUser('shopper')).map((s) => s.id)).toEqual([id, made.session.id]);
    expect(await store.revokeUser('shopper')).toBe(2);
    expect(await store.listUser('shopper')).toEqual([]);
    expect(await store.get(id)).toBeNull();
  });

  it('sweeps expired sessions on every master', { timeout: 30_000 }, async () => {
    const prefix = randomPrefix();
    const clock = new ManualClock(T0);
    const { store } = open({ prefix, clock });
    await Promise.all(Array.from({ length: 300 }, () => store.create({ idleTimeout: '1m' })));
    const masters = await cluster.masters();
    const before = await Promise.all(masters.map((p) => sessionKeysOn(p, prefix)));
    for (const n of before) expect(n).toBeGreaterThan(0);
    await clock.advance('2m');
    expect((await store.sweep()).expired).toBe(300);
    expect(await Promise.all(masters.map((p) => sessionKeysOn(p, prefix)))).toEqual([0, 0, 0]);
  });

  it('clear() leaves no key of the store on any master but the counters that must keep growing', { timeout: 30_000 }, async () => {
    const prefix = randomPrefix();
    const { store } = open({ prefix });
    const first = await store.create({ userId: 'c0', data: { u: 0 } });
    for (let u = 1; u < 20; u++) await store.create({ userId: `c${u}`, data: { u } });
    await Promise.all(Array.from({ length: 20 }, () => store.create({})));
    // Caller-chosen ids of users, outside their own buckets (the per-user bucket notes), and a lease.
    for (let u = 0; u < 10; u++) {
      let n = 0;
      while (bucketOfId(`cart:${u}:${n}`) === bucketOfUser(`shop${u}`)) n++;
      await store.set(`cart:${u}:${n}`, { items: u }, { userId: `shop${u}` });
    }
    const lease = await store.lock(first.session.id);
    await lease.release();
    const masters = await cluster.masters();
    const keysOn = async (pattern: string) => {
      const all: string[] = [];
      for (const port of masters) {
        const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
        await c.connect();
        try {
          let cursor = '0';
          do {
            const [next, keys] = await c.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
            cursor = next;
            all.push(...keys);
          } while (cursor !== '0');
        } finally {
          c.disconnect();
        }
      }
      return all;
    };
    expect((await keysOn(`${prefix}*x:*`)).length).toBeGreaterThan(0);
    await store.clear();
    expect(await store.size()).toBe(0);
    expect(await store.listUser('shop3')).toEqual([]);
    // Only the access sequence counters (per bucket) and the fencing counter stay (docs/redis.md).
    const left = await keysOn(`${prefix}*`);
    expect(left.filter((k) => !/(?::seq|fence)$/.test(k))).toEqual([]);
    // Fencing numbers keep growing across clear().
    const again = await store.lock((await store.create({})).session.id);
    expect(again.fence).toBeGreaterThan(lease.fence);
  });

  it(
    'a master killed during writes: bounded errors, its replica takes over, no restart, every write acknowledged with WAIT survives',
    { timeout: 90_000 },
    async () => {
      const { store } = open({ durability: { replicas: 1, timeout: '500ms' } });
      const acked: string[] = [];
      const errors: unknown[] = [];
      let afterRecovery = 0;
      let recovered = false;
      let stop = false;
      const deadline = Date.now() + 60_000;
      const writer = async () => {
        for (let i = 0; i < 5000 && !stop && Date.now() < deadline; i++) {
          try {
            const { session } = await store.create({ userId: `w${i % 50}`, data: { i } });
            acked.push(session.id);
            if (recovered) afterRecovery++;
          } catch (err) {
            errors.push(err);
            await new Promise((r) => setTimeout(r, 20));
          }
          if (afterRecovery >= 300) stop = true;
        }
      };
      const writers = Array.from({ length: 4 }, writer);
      while (acked.length < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const [victim] = await cluster.masters();
      await cluster.kill(victim as number);
      // Its replica is promoted; the killed node comes back as a replica so WAIT can be met again.
      while (Date.now() < deadline) {
        const m = await cluster.masters();
        if (m.length === 3 && !m.includes(victim as number)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await cluster.restart(victim as number);
      await cluster.waitHealthy();
      recovered = true;
      await Promise.all(writers);
      expect(afterRecovery).toBeGreaterThanOrEqual(300);
      expect((await cluster.masters()).includes(victim as number)).toBe(false);
      for (const err of errors) expect(isLapseError(err, 'LAPSE_BACKEND_UNAVAILABLE'), String(err)).toBe(true);
      expect(errors.length).toBeLessThan(acked.length);
      const missing: string[] = [];
      for (const id of acked) if ((await store.get(id)) === null) missing.push(id);
      expect(missing).toEqual([]);
    },
  );
});
