import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { trackInflight } from '../../../../test/helpers/inflight.js';
import { describeRedis, type RedisServer, randomPrefix, startRedis } from '../../../../test/helpers/redis-server.js';
import { redis } from '../../src/backends/redis/backend.js';
import { runBackendConformance } from '../../src/testing/suite.js';
import { silentLogger } from '../../src/util/logger.js';

// One real redis-server for the file; every test gets its own key prefix.
describeRedis('redis backend', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  runBackendConformance(
    { describe, it, expect, afterEach },
    {
      name: 'redis',
      make: ({ clock }) => {
        // A Redis call is a real round trip: the fake clock waits for calls in flight before each timer.
        const inflight = trackInflight(
          redis({
            url: server.url,
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
