import { afterEach, describe, expect, it } from 'vitest';
import { trackInflight } from '../../../../test/helpers/inflight.js';
import { describePostgres, randomName, usePostgresWithAdmin } from '../../../../test/helpers/postgres-server.js';
import { postgres } from '../../src/backends/postgres/index.js';
import { runBackendConformance } from '../../src/testing/suite.js';
import { silentLogger } from '../../src/util/logger.js';

// One real PostgreSQL for the file; every test gets a fresh schema (created by the backend on
// first use, dropped after), which is cheaper than emptying one.
describePostgres('postgres backend', () => {
  const pg0 = usePostgresWithAdmin();
  let schemas: string[] = [];

  runBackendConformance(
    { describe, it, expect, afterEach },
    {
      name: 'postgres',
      make: ({ clock }) => {
        const schema = randomName('conf');
        schemas.push(schema);
        // A call is a real round trip: the fake clock waits for calls in flight before each timer.
        const inflight = trackInflight(
          postgres({
            url: pg0.server.url,
            schema,
            poolSize: 4,
            logger: silentLogger,
          }),
        );
        clock.waitFor(inflight.drain);
        return inflight.backend;
      },
      cleanup: async () => {
        for (const s of schemas) await pg0.admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
        schemas = [];
      },
    },
  );
});
