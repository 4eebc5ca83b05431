import { afterAll, beforeAll, expect, it } from 'vitest';
import { type PostgresBackend, postgres } from '../src/backends/postgres/index.js';
import { isLapseError } from '../src/core/errors.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore, type SessionStore } from '../src/core/store.js';
import { describePostgres, type PostgresServer, randomName, startPostgres } from '../../../test/helpers/postgres-server.js';

const WRITERS = 8;
/** Bounds on every load loop: operations per writer, and wall time. */
const MAX_OPS = 4_000;
const MAX_MS = 40_000;

interface Load {
  /** Ids whose create was acknowledged, and the last acknowledged data of each writer's counter. */
  acked: Set<string>;
  counters: Map<string, number>;
  ok: number;
  errors: unknown[];
  /** Resolves when every writer has stopped. */
  done: Promise<void>;
  stop(): void;
}

/** WRITERS loops of create + counted update, each bounded by MAX_OPS and MAX_MS, until stop(). */
function writeLoad(store: SessionStore): Load {
  let stopped = false;
  const load: Load = {
    acked: new Set<string>(),
    counters: new Map<string, number>(),
    ok: 0,
    errors: [],
    done: Promise.resolve(),
    stop: () => {
      stopped = true;
    },
  };
  const deadline = Date.now() + MAX_MS;
  const writer = async (w: number) => {
    const counter = `counter-${w}`;
    await store.set(counter, { n: 0 });
    load.counters.set(counter, 0);
    for (let i = 1; i <= MAX_OPS && !stopped && Date.now() < deadline; i++) {
      try {
        const { session } = await store.create({ userId: `w${w}`, data: { i } });
        load.acked.add(session.id);
        await store.update(counter, { n: i });
        load.counters.set(counter, i);
        load.ok++;
      } catch (err) {
        load.errors.push(err);
        // A failed call fails fast; yield so a refused connection is not retried in a hot loop.
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  load.done = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w))).then(() => undefined);
  return load;
}

/** Resolves once `n` more operations of the load succeeded (bounded by MAX_MS). */
async function progress(load: Load, n: number): Promise<void> {
  const target = load.ok + n;
  await expect.poll(() => load.ok, { timeout: MAX_MS, interval: 20 }).toBeGreaterThanOrEqual(target);
}

describePostgres('postgres backend: faults', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.destroy();
  });

  function open(opts: { poolSize?: number; commandTimeout?: string } = {}): { backend: PostgresBackend; store: SessionStore } {
    const backend = postgres({ url: server.url, schema: randomName('fault'), logger: silentLogger, ...opts });
    return { backend, store: createStore({ backend, sweepInterval: false, logger: silentLogger }) };
  }

  it('an exhausted pool is LAPSE_BACKEND_UNAVAILABLE within the timeout, and serves again once a connection is free', async () => {
    const { backend, store } = open({ poolSize: 1, commandTimeout: '300ms' });
    try {
      const { token } = await store.create({});
      const held = await backend.pool.connect();
      let err: unknown;
      try {
        await store.validate(token);
      } catch (e) {
        err = e;
      } finally {
        held.release();
      }
      expect(isLapseError(err, 'LAPSE_BACKEND_UNAVAILABLE'), String(err)).toBe(true);
      expect((await store.stats()).backendErrors).toBeGreaterThanOrEqual(1);
      expect(await store.validate(token)).not.toBeNull();
    } finally {
      await store.close();
    }
  });

  it('pg_ctl stop -m immediate under write load, then start: no acknowledged write is lost', { timeout: 120_000 }, async () => {
    const { backend, store } = open();
    try {
      await backend.ready();
      const load = writeLoad(store);
      await progress(load, 300);
      await server.stop('immediate'); // a crash: no checkpoint, recovery replays the WAL
      const ackedAtCrash = load.acked.size;
      const countersAtCrash = new Map(load.counters);
      await server.start();
      await progress(load, 100);
      load.stop();
      await load.done;
      expect(load.errors.length).toBeGreaterThan(0);
      for (const e of load.errors) expect(isLapseError(e, 'LAPSE_BACKEND_UNAVAILABLE'), String(e)).toBe(true);

      expect(ackedAtCrash).toBeGreaterThanOrEqual(300);
      const missing: string[] = [];
      for (const id of load.acked) if (!(await store.get(id))) missing.push(id);
      expect(missing).toEqual([]);
      for (const [id, n] of countersAtCrash) {
        expect(((await store.get(id))?.data as { n: number } | undefined)?.n, id).toBeGreaterThanOrEqual(n);
      }
      // The counts survived with the rows (the same transactions).
      const stats = await store.stats();
      const truth = await backend.pool.query(`SELECT count(*)::int AS n FROM "${backend.schema}".lapse_sessions`);
      expect(stats.sessions).toBe(truth.rows[0].n);
    } finally {
      await store.close();
    }
  });

  it('a database restart under load: only LAPSE_BACKEND_UNAVAILABLE while it is down, then it recovers by itself', { timeout: 120_000 }, async () => {
    const { backend, store } = open({ commandTimeout: '2s' });
    const other = postgres({ url: server.url, schema: backend.schema, logger: silentLogger });
    try {
      await backend.ready();
      const heard: string[] = [];
      backend.onUnlock((id) => heard.push(id));
      const load = writeLoad(store);
      await progress(load, 200);
      await server.stop('fast');
      // While it is down every call fails fast and clearly.
      await expect.poll(() => load.errors.length, { timeout: MAX_MS, interval: 20 }).toBeGreaterThanOrEqual(WRITERS);
      await server.start();
      await progress(load, 200);
      load.stop();
      await load.done;
      for (const e of load.errors) expect(isLapseError(e, 'LAPSE_BACKEND_UNAVAILABLE'), String(e)).toBe(true);
      // Bounded: each writer backs off 5 ms per failure, and MAX_OPS bounds it anyway.
      expect(load.errors.length).toBeLessThan(WRITERS * MAX_OPS);

      // After the restart everything works, the unlock listener included (it reconnected by itself).
      const now = Date.now();
      const { session } = await store.create({});
      const lease = await other.lock(session.id, 'x', 10_000, now);
      await expect.poll(async () => {
        // Lock and release until the reconnected listener hears one.
        if (heard.includes(session.id)) return true;
        const l = await other.lock(session.id, 'x', 10_000, Date.now()).catch(() => lease);
        await other.unlock(session.id, l.fence, Date.now());
        return heard.includes(session.id);
      }, { timeout: 20_000, interval: 200 }).toBe(true);
      expect(await store.validate('nope.nope')).toBeNull();
      await backend.ping();
    } finally {
      await other.close();
      await store.close();
    }
  });
});
