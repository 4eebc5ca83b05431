import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/core/backend.js';
import { memory } from '../src/backends/memory/memory.js';
import { postgres } from '../src/backends/postgres/index.js';
import { redis } from '../src/backends/redis/backend.js';
import { sqlite } from '../src/backends/sqlite/backend.js';
import { isLapseError } from '../src/core/errors.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore } from '../src/core/store.js';
import { countWrites } from './fixtures/count-writes.js';
import type { UpdatePlan, UpdateReport } from './fixtures/update-worker.js';
import { type PostgresServer, postgresAvailable, randomName, startPostgres } from '../../../test/helpers/postgres-server.js';
import { randomPrefix, type RedisServer, redisAvailable, startRedis } from '../../../test/helpers/redis-server.js';
import { tempDir } from '../../../test/helpers/tmp.js';
import { Workers } from '../../../test/helpers/workers.js';

const WORKER = fileURLToPath(new URL('./fixtures/update-worker.ts', import.meta.url));
const forks = new Workers(WORKER);
const UPDATES = 200;

const withRedis = redisAvailable() || process.env.CI === 'true';
const withPostgres = postgresAvailable() || process.env.CI === 'true';
let redisServer: RedisServer | undefined;
let pgServer: PostgresServer | undefined;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  if (withRedis) redisServer = await startRedis();
  if (withPostgres) pgServer = await startPostgres();
});
afterAll(async () => {
  await redisServer?.stop();
  if (pgServer) await closedConnections(pgServer.url);
  await pgServer?.destroy();
});

/**
 * Waits (bounded) until no other client is connected: pg's pool.end() resolves before its
 * clients' sockets close, and a server stopped under a closing client makes that client emit
 * an error no one listens to any more (57P01).
 */
async function closedConnections(url: string): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    for (let i = 0; i < 100; i++) {
      const r = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
      if (r.rows[0].n === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await admin.end();
  }
}
afterEach(async () => {
  forks.killAll();
  for (const f of cleanup.splice(0)) await f();
});

/** Where a backend of this kind keeps its data, as the worker takes it, and the backend itself. */
function place(kind: string): { target: string; open: () => Backend } {
  if (kind === 'memory') return { target: '', open: () => memory({ logger: silentLogger }) };
  if (kind === 'sqlite') {
    const tmp = tempDir('lapse-uq-');
    cleanup.push(tmp.cleanup);
    return { target: tmp.dir, open: () => sqlite({ path: join(tmp.dir, 'sessions.db'), logger: silentLogger }) };
  }
  if (kind === 'redis') {
    const url = (redisServer as RedisServer).url;
    const prefix = randomPrefix();
    return { target: `${url}|${prefix}`, open: () => redis({ url, prefix, commandTimeout: '20s', logger: silentLogger }) };
  }
  const url = (pgServer as PostgresServer).url;
  const schema = randomName('uq');
  return { target: `${url}|${schema}`, open: () => postgres({ url, schema, poolSize: 4, logger: silentLogger }) };
}

const kinds = ['memory', 'sqlite', ...(withRedis ? ['redis'] : []), ...(withPostgres ? ['postgres'] : [])];

describe.each(kinds)('update queue on %s', (kind) => {
  it(`${UPDATES} concurrent update(fn) of one session in one process: all applied, no write misses, queued ones written together`, async () => {
    const counted = countWrites(place(kind).open());
    const store = createStore({ backend: counted.backend, sweepInterval: false, logger: silentLogger });
    cleanup.push(() => store.close());
    const { session } = await store.create({ data: { n: 0, seen: [] } });
    const results = await Promise.all(
      Array.from({ length: UPDATES }, (_, i) =>
        store.update<{ n: number; seen: number[] }>(session.id, (prev) => ({ n: prev.n + 1, seen: [...prev.seen, i] })),
      ),
    );
    const after = await store.get(session.id);
    const data = after?.data as { n: number; seen: number[] };
    expect(data.n).toBe(UPDATES);
    // Each function ran once on the result of the one before it, in the order they were called.
    expect(data.seen).toEqual(Array.from({ length: UPDATES }, (_, i) => i));
    // Every write landed (no retry), one per batch: the first alone, the rest behind it together.
    expect((await store.stats()).updateRetries).toBe(0);
    expect(counted.writes()).toBe((after?.version ?? 0) - 1);
    expect(counted.writes()).toBeLessThanOrEqual(UPDATES / 10);
    // Each caller gets a session that holds its own change.
    results.forEach((s, i) => {
      expect((s.data as { seen: number[] }).seen).toContain(i);
    });
  });

  it('in a batch, a function that throws fails its own caller only', async () => {
    const store = createStore({ backend: place(kind).open(), sweepInterval: false, logger: silentLogger });
    cleanup.push(() => store.close());
    const { session } = await store.create({ data: { n: 0 } });
    const inc = () => store.update<{ n: number }>(session.id, (p) => ({ n: p.n + 1 }));
    const outcomes = await Promise.allSettled([
      inc(),
      inc(),
      store.update(session.id, () => {
        throw new Error('boom');
      }),
      store.update(session.id, () => ({ big: 'x'.repeat(2_000_000) })),
      inc(),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect(String((outcomes[2] as PromiseRejectedResult).reason)).toContain('boom');
    expect((outcomes[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'LAPSE_PAYLOAD_TOO_LARGE' });
    expect((await store.get(session.id))?.data).toEqual({ n: 3 });
  });

  it('an explicit expectedVersion still conflicts, without a write when this process already moved past it', async () => {
    const counted = countWrites(place(kind).open());
    const store = createStore({ backend: counted.backend, sweepInterval: false, logger: silentLogger });
    cleanup.push(() => store.close());
    const { session } = await store.create({ data: { n: 0 } });
    const v = session.version;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => store.update(session.id, { n: i }, { expectedVersion: v })),
    );
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const rejected = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(rejected.every((o) => isLapseError(o.reason, 'LAPSE_VERSION_CONFLICT'))).toBe(true);
    expect(counted.writes()).toBe(1);
    await expect(store.update(session.id, (p) => p, { expectedVersion: v })).rejects.toMatchObject({ code: 'LAPSE_VERSION_CONFLICT' });
    // A plain write between queued function-form updates: each of the three lands (a conflict
    // it causes is retried from a fresh read), in some order.
    await Promise.all([
      store.update<{ n: number }>(session.id, (p) => ({ n: p.n + 1 })),
      store.update(session.id, { n: 100 }),
      store.update<{ n: number }>(session.id, (p) => ({ n: p.n + 1 })),
    ]);
    const end = await store.get(session.id);
    expect(end?.version).toBe(v + 4);
    expect([100, 101, 102]).toContain((end?.data as { n: number } | undefined)?.n);
  });

  it('rotate waits for the updates before it, and updates after it find the session gone', async () => {
    const store = createStore({ backend: place(kind).open(), sweepInterval: false, logger: silentLogger });
    cleanup.push(() => store.close());
    const { token, session } = await store.create({ data: { n: 0 } });
    const inc = () => store.update<{ n: number }>(session.id, (p) => ({ n: p.n + 1 }));
    const [a, b, rotated, late] = await Promise.allSettled([inc(), inc(), store.rotate(token), inc()]);
    expect([a.status, b.status]).toEqual(['fulfilled', 'fulfilled']);
    expect(rotated.status).toBe('fulfilled');
    const next = (rotated as PromiseFulfilledResult<{ session: { data: unknown } }>).value.session;
    expect(next.data).toEqual({ n: 2 });
    expect(late.status === 'rejected' && isLapseError(late.reason, 'LAPSE_NOT_FOUND')).toBe(true);
  });

  it('concurrent withLock(wait) of one session take turns: each runs alone, about two lock attempts each', async () => {
    const counted = countWrites(place(kind).open());
    const store = createStore({ backend: counted.backend, sweepInterval: false, logger: silentLogger });
    cleanup.push(() => store.close());
    const { session } = await store.create({ data: { n: 0 } });
    const N = 20;
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: N }, () =>
        store.withLock(
          session.id,
          async (lease) => {
            most = Math.max(most, ++inside);
            await store.update<{ n: number }>(session.id, (p) => ({ n: p.n + 1 }), { lease });
            inside--;
          },
          { wait: '20s' },
        ),
      ),
    );
    expect(most).toBe(1);
    expect((await store.get(session.id))?.data).toEqual({ n: N });
    // The first in line tries once when it comes to the front and once after the release it waits for.
    expect(counted.locks()).toBeLessThanOrEqual(2 * N);
    await expect(store.lock(session.id)).resolves.toMatchObject({ fence: expect.any(Number) });
  });

  if (kind !== 'memory') {
    it('two processes contending: 0 lost updates, bounded writes', async () => {
      const { target, open } = place(kind);
      const store = createStore({ backend: open(), sweepInterval: false, logger: silentLogger });
      cleanup.push(() => store.close());
      const { session } = await store.create({ data: {} });
      const workers = await Promise.all(['a', 'b'].map((name) => forks.start([kind, target, name])));
      const reports = await Promise.all(workers.map((w) => forks.result<UpdatePlan, UpdateReport>(w, { id: session.id, updates: UPDATES })));
      for (const r of reports) expect(r.error).toBeUndefined();
      expect((await store.get(session.id))?.data).toEqual({ a: UPDATES, b: UPDATES });
      // No storm: fewer writes than updates in each process (queued ones go together), and
      // only the other process's writes make one miss.
      for (const r of reports) {
        expect(r.writes).toBeLessThanOrEqual(UPDATES);
        expect(r.retries).toBeLessThan(r.writes);
      }
    }, 60_000);
  }
});

