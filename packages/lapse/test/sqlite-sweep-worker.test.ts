import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SqliteBackend, sqlite } from '../src/backends/sqlite/backend.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore } from '../src/core/store.js';
import { sessionRecord } from './fixtures/sqlite-record.js';
import { tempDir } from '../../../test/helpers/tmp.js';

/** `rows` sessions written with SQL: row x expires at x (idle) or, one in ten, at its absolute cap. */
function fill(b: SqliteBackend, rows: number): void {
  b.db.exec(`
    WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ${rows})
    INSERT INTO lapse_sessions (id, secret_hash, user_id, data, created_at, last_accessed_at, expires_at,
      absolute_expires_at, idle_timeout, access_count, version, recency)
    SELECT 'x' || x, 'h', 'u' || (x % 100), '{}', 0, 0, x, CASE WHEN x % 10 = 0 THEN x ELSE 100000 END, 1000, 0, 1, x FROM n`);
}

let tmp: ReturnType<typeof tempDir>;
let b: SqliteBackend;

beforeEach(() => {
  tmp = tempDir('lapse-sqlite-sweep-');
});

afterEach(async () => {
  await b.close();
  tmp.cleanup();
});

describe('sqlite sweep on the checkpoint worker', () => {
  it('removes every expired row off the event loop, in chunks it answers, while this thread keeps writing', async () => {
    b = sqlite({ path: join(tmp.dir, 'lapse.db') });
    fill(b, 20_000);
    b.insert(sessionRecord('live', 0, { idle: 1_000_000, absolute: 1_000_000, userId: 'u1' }), 0, {});
    // The chunks must not run on this thread's connection.
    const tx = (b as unknown as { tx: { sweep: unknown } }).tx;
    tx.sweep = () => {
      throw new Error('swept on the event loop');
    };
    let turns = 0;
    let done = false;
    const spin = () => {
      turns++;
      if (!done) setImmediate(spin);
    };
    setImmediate(spin);
    const sweeping = b.sweep(50_000, 30_000).finally(() => {
      done = true;
    });
    // A write from this thread while the sweep runs goes through between two chunks.
    const touched = await b.touch('live', 10, 1, 10);
    expect(done).toBe(false);
    expect(touched?.accessCount).toBe(1);
    const ended = await sweeping;
    expect(ended).toHaveLength(20_000);
    expect(new Set(ended.map((e) => e.id)).size).toBe(20_000);
    expect(ended[0]).toEqual({ id: 'x1', userId: 'u1', reason: 'idle' });
    expect(ended.find((e) => e.id === 'x10')?.reason).toBe('absolute');
    expect(ended.filter((e) => e.reason === 'absolute')).toHaveLength(2_000);
    expect(ended.at(-1)?.id).toBe('x20000');
    // Many chunks, each answered on its own turn: the loop turned between them.
    expect(turns).toBeGreaterThan(10);
    expect(b.stats(50_000)).toEqual({ sessions: 1, users: 1, locked: 0 });
    expect(b.get('live', 50_000)).not.toBeNull();
    expect(await b.sweep(50_000, 100)).toEqual([]);
    expect(b.db.pragma('integrity_check', { simple: true })).toBe('ok');
  });

  it('honours the limit across chunks, and a store sweep reports each removal once, with exact counts', async () => {
    b = sqlite({ path: join(tmp.dir, 'lapse.db') });
    fill(b, 5_000);
    expect(await b.sweep(50_000, 1_234)).toHaveLength(1_234);
    const store = createStore({ backend: b, sweepInterval: false, logger: silentLogger, clock: { now: () => 50_000 } });
    const seen = new Set<string>();
    let events = 0;
    store.on('expired', (e) => {
      events++;
      seen.add(e.id);
    });
    expect(await store.sweep()).toEqual({ expired: 5_000 - 1_234 });
    expect(events).toBe(5_000 - 1_234);
    expect(seen.size).toBe(events);
    expect(seen.has('x1234')).toBe(false);
    expect(seen.has('x1235')).toBe(true);
    expect((await store.stats()).expired).toBe(5_000 - 1_234);
    expect(b.stats(50_000)).toEqual({ sessions: 0, users: 0, locked: 0 });
  });

  it('without the worker (checkpointInterval false) the chunks run here and remove everything too', async () => {
    b = sqlite({ path: join(tmp.dir, 'lapse.db'), checkpointInterval: false });
    fill(b, 3_000);
    const ended = await b.sweep(50_000, 10_000);
    expect(ended).toHaveLength(3_000);
    expect(ended[0]?.id).toBe('x1');
    expect(b.stats(50_000)).toEqual({ sessions: 0, users: 0, locked: 0 });
  });

  it('a sweep asked before close() is answered; after close() it removes nothing more', async () => {
    b = sqlite({ path: join(tmp.dir, 'lapse.db') });
    fill(b, 2_000);
    const sweeping = b.sweep(50_000, 10_000);
    await b.close();
    const ended = await sweeping;
    expect(ended.length).toBeLessThanOrEqual(2_000);
    expect(new Set(ended.map((e) => e.id)).size).toBe(ended.length);
    const again = sqlite({ path: join(tmp.dir, 'lapse.db') });
    try {
      // What the sweep reported is exactly what is gone.
      expect(again.stats(0).sessions).toBe(2_000 - ended.length);
    } finally {
      await again.close();
    }
  });
});
