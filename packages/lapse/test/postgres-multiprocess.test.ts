import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { postgres } from '../src/backends/postgres/index.js';
import { silentLogger } from '../src/util/logger.js';
import type { PgWorkerPlan, PgWorkerReport } from './fixtures/postgres-worker.js';
import { sessionRecord } from './fixtures/sqlite-record.js';
import { describePostgres, type PostgresServer, randomName, startPostgres } from '../../../test/helpers/postgres-server.js';

const WORKER = fileURLToPath(new URL('./fixtures/postgres-worker.ts', import.meta.url));

describePostgres('postgres: two processes on one database', () => {
  let server: PostgresServer;
  let children: ChildProcess[] = [];
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterEach(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    children = [];
  });
  afterAll(async () => {
    await server?.destroy();
  });

  /** Starts a worker and resolves once it has made (or found) the schema. */
  function start(url: string, schema: string, name: string): Promise<ChildProcess> {
    const child = fork(WORKER, [url, schema, name], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    return new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`worker ${name} exited early with ${code}`)));
      child.once('message', (m: { ready: boolean; error?: string }) => (m.ready ? resolve(child) : reject(new Error(m.error))));
    });
  }

  function result(child: ChildProcess, plan: PgWorkerPlan): Promise<PgWorkerReport> {
    return new Promise((resolve, reject) => {
      child.removeAllListeners('exit');
      child.once('exit', (code) => reject(new Error(`worker exited with ${code} before reporting`)));
      child.once('message', (msg: { report: PgWorkerReport }) => resolve(msg.report));
      child.send({ go: plan });
    });
  }

  it('both create the schema at once; CAS and fences hold; each cleanup slot runs once', { timeout: 90_000 }, async () => {
    const url = await server.createDatabase('mp');
    const schema = randomName('mp');
    // Both workers race to create the schema in a database that has none.
    const [a, b] = await Promise.all([start(url, schema, 'a'), start(url, schema, 'b')]);

    const setup = postgres({ url, schema, logger: silentLogger });
    const now = Date.now();
    await setup.insert(sessionRecord('counter', now, { data: JSON.stringify({ n: 0 }) }), now, {});
    await setup.insert(sessionRecord('leased', now, { data: JSON.stringify({ n: 0 }) }), now, {});
    const fenceBefore = (await setup.lock('leased', 'setup', 1, now - 10)).fence; // already run out

    const plan: PgWorkerPlan = { creates: 300, increments: 150, leased: 80, runMs: 4_500 };
    const [ra, rb] = await Promise.all([result(a, plan), result(b, plan)]);
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
