import { afterEach, describe, expect, it } from 'vitest';
import { trackInflight } from '../../../../test/helpers/inflight.js';
import { useRedisCluster } from '../../../../test/helpers/redis-cluster.js';
import { describeRedis, randomPrefix } from '../../../../test/helpers/redis-server.js';
import { redis } from '../../src/backends/redis/backend.js';
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
});
