import { redis } from '../../src/backends/redis/backend.js';
import { silentLogger } from '../../src/util/logger.js';
import { useRedisCluster } from '../../../../test/helpers/redis-cluster.js';
import { describeRedis, randomPrefix } from '../../../../test/helpers/redis-server.js';
import { trackInflight } from '../../../../test/helpers/inflight.js';
import { runConformance } from '../../src/testing/suite.js';

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
