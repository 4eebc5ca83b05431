import { afterEach, describe, expect, it } from 'vitest';
import { trackInflight } from '../../../../test/helpers/inflight.js';
import { useRedisCluster } from '../../../../test/helpers/redis-cluster.js';
import { describeRedis, randomPrefix } from '../../../../test/helpers/redis-server.js';
import { redis } from '../../src/backends/redis/backend.js';
import { bucketOfId, bucketOfUser } from '../../src/backends/redis/layout.js';
import { createStore } from '../../src/core/store.js';
import { runBackendConformance } from '../../src/testing/suite.js';
import { silentLogger } from '../../src/util/logger.js';

// One real 3-master cluster for the file; every test gets its own key prefix.
describeRedis('redis cluster backend', () => {
  const cluster = useRedisCluster();

  runBackendConformance(
    { describe, it, expect, afterEach },
    {
      name: 'redis cluster',
      make: ({ clock }) => {
        const inflight = trackInflight(
          redis({
            cluster: cluster().urls,
            prefix: randomPrefix(),
            logger: silentLogger,
          }),
        );
        clock.waitFor(inflight.drain);
        return inflight.backend;
      },
    },
  );

  it('scanUsers merges the buckets in byte order and counts a user found in several buckets once', async () => {
    const store = createStore({
      backend: redis({ cluster: cluster().urls, prefix: randomPrefix(), logger: silentLogger }),
      sweepInterval: false,
      logger: silentLogger,
    });
    try {
      const users = Array.from({ length: 40 }, (_, i) => `user-${String(i).padStart(2, '0')}`);
      for (const u of users) await store.create({ userId: u });
      // A caller-chosen id outside user-07's bucket: that bucket lists user-07 too.
      const away = Array.from({ length: 200 }, (_, i) => `cart:${i}`).find((id) => bucketOfId(id) !== bucketOfUser('user-07')) as string;
      await store.set(away, { n: 1 }, { userId: 'user-07' });
      expect(new Set(users.map(bucketOfUser)).size).toBeGreaterThan(10);
      const scan = (prefix: string, after: string | null, limit: number) => store.backend.scanUsers?.(prefix, after, limit, Date.now());
      expect(await scan('user-0', null, 20)).toEqual(users.slice(0, 10).map((userId) => ({ userId, sessions: userId === 'user-07' ? 2 : 1 })));
      const seen: string[] = [];
      let after: string | null = null;
      for (let i = 0; i < 20; i++) {
        const page = ((await scan('user-', after, 7)) ?? []).map((u) => u.userId);
        seen.push(...page);
        if (page.length < 7) break;
        after = page[page.length - 1] as string;
      }
      expect(seen).toEqual(users);
    } finally {
      await store.close();
    }
  });
});
