import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { trackInflight } from '../../../../test/helpers/inflight.js';
import { describePostgres, type PostgresServer, randomName, startPostgres } from '../../../../test/helpers/postgres-server.js';
import { postgres } from '../../src/backends/postgres/index.js';
import { runBackendConformance } from '../../src/testing/suite.js';
import { silentLogger } from '../../src/util/logger.js';

// One real PostgreSQL for the file; every test gets a fresh schema (created by the backend on
// first use, dropped after), which is cheaper than emptying one.
describePostgres('postgres backend', () => {
  let server: PostgresServer;
  let admin: pg.Client;
  let schemas: string[] = [];
  beforeAll(async () => {
    server = await startPostgres();
    admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await server?.destroy();
  });

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
            url: server.url,
            schema,
            poolSize: 4,
            logger: silentLogger,
          }),
        );
        clock.waitFor(inflight.drain);
        return inflight.backend;
      },
      cleanup: async () => {
        for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
        schemas = [];
      },
    },
  );
});
