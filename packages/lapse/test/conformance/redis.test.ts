import { afterAll, beforeAll } from 'vitest';
import { redis } from '../../src/backends/redis/backend.js';
import { silentLogger } from '../../src/util/logger.js';
import { trackInflight } from '../../../../test/helpers/inflight.js';
import { describeRedis, randomPrefix, type RedisServer, startRedis } from '../../../../test/helpers/redis-server.js';
import { runConformance } from '../../src/testing/suite.js';

// One real redis-server for the file; every test gets its own key prefix.
describeRedis('redis backend', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  runConformance('redis', {
    make: ({ clock }) => {
      // A Redis call is a real round trip: the fake clock waits for calls in flight before each timer.
      const inflight = trackInflight(redis({ url: server.url, prefix: randomPrefix(), logger: silentLogger }));
      clock.waitFor(inflight.drain);
      return inflight.backend;
    },
  });
});
