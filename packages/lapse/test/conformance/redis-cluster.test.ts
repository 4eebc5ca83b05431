import { redis } from '../../src/backends/redis.js';
import { silentLogger } from '../../src/logger.js';
import { useRedisCluster } from '../helpers/redis-cluster.js';
import { describeRedis, randomPrefix } from '../helpers/redis-server.js';
import { trackInflight } from '../helpers/inflight.js';
import { runConformance } from './suite.js';

// One real 3-master cluster for the file; every test gets its own key prefix.
describeRedis('redis cluster backend', () => {
  const cluster = useRedisCluster();

  runConformance('redis cluster', {
    make: ({ clock }) => {
      const inflight = trackInflight(redis({ cluster: cluster().urls, prefix: randomPrefix(), logger: silentLogger }));
      clock.waitFor(inflight.drain);
      return inflight.backend;
    },
  });
});
