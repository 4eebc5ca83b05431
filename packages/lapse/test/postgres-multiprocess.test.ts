import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { postgres } from '../src/backends/postgres/index.js';
import { silentLogger } from '../src/util/logger.js';
import type { PgWorkerPlan, PgWorkerReport } from './fixtures/postgres-worker.js';
import { sessionRecord } from './fixtures/sqlite-record.js';
import { describePostgres, type PostgresServer, randomName, startPostgres } from '../../../test/helpers/postgres-server.js';
import { Workers } from '../../../test/helpers/workers.js';

const WORKER = fileURLToPath(new URL('./fixtures/postgres-worker.ts', import.meta.url));
const forks = new Workers(WORKER);

describePostgres('postgres: two processes on one database', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterEach(() => {
    forks.killAll();
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it('both create the schema at once; CAS and fences hold; each cleanup slot runs once', { timeout: 90_000 }, async () => {
    const url = await server.createDatabase('mp');
    const schema = randomName('mp');
    // Both workers race to create the schema in a database that has none.
    const [a, b] = await Promise.all([forks.start([url, schema, 'a']), forks.start([url, schema, 'b'])]);

    const setup = postgres({ url, schema, logger: silentLogger });
    const now = Date.now();
    await setup.insert(sessionRecord('counter', now, { data: JSON.stringify({ n: 0 }) }), now, {});
    await setup.insert(sessionRecord('leased', now, { data: JSON.stringify({ n: 0 }) }), now, {});
    const fenceBefore = (await setup.lock('leased', 'setup', 1, now - 10)).fence; // already run out

    const plan: PgWorkerPlan = { creates: 300, increments: 150, leased: 80, runMs: 4_500 };
    const [ra, rb] = await Promise.all([forks.result<PgWorkerPlan, PgWorkerReport>(a, plan), forks.result<PgWorkerPlan, PgWorkerReport>(b, plan)]);
    expect(ra.error).toBeUndefined();
    expect(rb.error).toBeUndefined();
    expect(ra.created + rb.created).toBe(2 * plan.creates);
    expect(ra.casRetries + rb.casRetries).toBeGreaterThan(0); // they did race

    const fences = [...ra.fences, ...rb.fences];
    expect(new Set(fences).size).toBe(fences.length);
    expect(Math.min(...fences)).toBeGreaterThan(fenceBefore);
    for (const r of [ra, rb]) expect(r.fences).toEqual([...r.fences].sort((x, y) => x - y));

    // Every cleanup slot ran on one process only, and the job did run and sweep.
    const slots = [...ra.slots, ...rb.slots];
    expect(slots.length).toBeGreaterThanOrEqual(3);
    expect(new Set(slots).size).toBe(slots.length);
    expect(ra.swept + rb.swept).toBeGreaterThan(0);

    try {
      const t = Date.now();
      const counter = await setup.get('counter', t);
      expect(JSON.parse(counter?.data ?? 'null')).toEqual({ n: 2 * plan.increments });
      expect(counter?.version).toBe(1 + 2 * plan.increments);
      expect(JSON.parse((await setup.get('leased', t))?.data ?? 'null')).toEqual({ n: 2 * plan.leased });
      // Counts agree with the rows: kept in the same transactions, whichever process wrote.
      const swept = await setup.sweep(t + 1_000, 10_000);
      const stats = await setup.stats(t);
      const truth = await setup.pool.query(
        `SELECT count(*)::int AS sessions, count(DISTINCT user_id)::int AS users FROM "${schema}".lapse_sessions`,
      );
      expect(stats).toEqual({ ...truth.rows[0], locked: 0 });
      expect(stats.sessions).toBe(2 + 2 * plan.creates - (ra.swept + rb.swept) - swept.length);
    } finally {
      await setup.close();
    }
  });
});
