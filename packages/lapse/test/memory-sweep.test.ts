import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../src/backends/memory/memory.js';
import { ManualClock } from '../src/core/clock.js';
import { newRecord } from '../src/core/session.js';
import { createStore } from '../src/core/store.js';
import { silentLogger } from '../src/util/logger.js';

const rec = (id: string, now: number, idle = 60_000) =>
  newRecord({ id, secretHash: '', userId: `u${id.length}`, data: '{}', now, idleTimeout: idle, absoluteTimeout: 3_600_000 });

/** What the id index (B+ tree) still holds, removed entries included. */
const indexed = (b: MemoryBackend) => (b as unknown as { byOrder: { size: number } }).byOrder.size;
/** Removed entries the id Maps still hold: all they hold, less the live ones. */
const idGarbage = (b: MemoryBackend) => {
  const byId = (b as unknown as { byId: { shards: Map<string, unknown>[]; size: number } }).byId;
  return byId.shards.reduce((n, m) => n + m.size, 0) - byId.size;
};

describe('memory sweep: removed entries leave the id index lazily', () => {
  it('swept ids are skipped by scan, can be used again, and go from the index with the last live session', () => {
    const b = new MemoryBackend();
    const now = 10_000;
    for (let i = 0; i < 10; i++) b.insert(rec(`s${i}`, now, i < 6 ? 1_000 : 60_000), now, {});
    expect(b.sweep(now + 2_000, 100).map((e) => e.id).sort()).toEqual(['s0', 's1', 's2', 's3', 's4', 's5']);
    expect(b.scan(null, 100, now + 2_000).map((r) => r.id)).toEqual(['s6', 's7', 's8', 's9']);
    // A swept id set again replaces its removed entry in the index.
    b.insert(rec('s2', now + 2_000), now + 2_000, {});
    expect(b.scan(null, 100, now + 2_000).map((r) => r.id)).toEqual(['s2', 's6', 's7', 's8', 's9']);
    expect(b.get('s2', now + 2_000)?.id).toBe('s2');
    expect(b.count(now + 2_000)).toBe(5);
    expect(b.sweep(now + 120_000, 100)).toHaveLength(5);
    expect(indexed(b)).toBe(0);
    expect(b.scan(null, 100, now + 120_000)).toEqual([]);
  });

  it('swept entries left in the id Maps are never found live, even with the clock set back, and go with the last live one', () => {
    const b = new MemoryBackend();
    const now = 10_000;
    for (let i = 0; i < 4; i++) b.insert(rec(`s${i}`, now, i < 2 ? 1_000 : 60_000), now, {});
    expect(b.sweep(now + 2_000, 100).map((e) => [e.id, e.reason])).toEqual([
      ['s0', 'idle'],
      ['s1', 'idle'],
    ]);
    expect(idGarbage(b)).toBe(2);
    // Earlier than the sweep: the removed entry stays removed for every lookup.
    expect(b.get('s0', now)).toBeNull();
    expect(b.touch('s0', now, 1, now)).toBeNull();
    expect(b.remove('s1', now, {})).toBeNull();
    expect(() => b.update('s1', '{}', now, {})).toThrow(/not found|s1/);
    expect(b.count(now)).toBe(2);
    expect(b.stats(now).sessions).toBe(2);
    // A rotate may take a swept id; a live one it may not.
    expect(b.rotate('s2', { id: 's0', secretHash: '' }, now, {}).id).toBe('s0');
    expect(idGarbage(b)).toBe(1);
    expect(() => b.rotate('s3', { id: 's0', secretHash: '' }, now, {})).toThrow(/exists/);
    expect(b.sweep(now + 120_000, 100).map((e) => e.id).sort()).toEqual(['s0', 's3']);
    expect(idGarbage(b)).toBe(0);
    expect(b.stats(now + 120_000).sessions).toBe(0);
  });

  it('once removed entries outnumber the live ones, a background walk takes them out of the index', async () => {
    const b = new MemoryBackend();
    const now = 10_000;
    for (let i = 0; i < 5_000; i++) b.insert(rec(`k${i}`, now, i % 5 === 0 ? 60_000 : 1_000), now, {});
    expect(b.sweep(now + 2_000, 10_000)).toHaveLength(4_000);
    expect(indexed(b)).toBe(5_000);
    for (let i = 0; i < 50 && indexed(b) > 1_000; i++) await new Promise<void>((r) => setImmediate(r));
    expect(indexed(b)).toBe(1_000);
    expect(idGarbage(b)).toBe(0);
    const ids: string[] = [];
    for (let after: string | null = null; ; ) {
      const page = b.scan(after, 300, now + 2_000);
      ids.push(...page.map((r) => r.id));
      if (page.length < 300) break;
      after = page[page.length - 1]?.id ?? null;
    }
    expect(ids).toHaveLength(1_000);
    expect(ids.every((id) => Number(id.slice(1)) % 5 === 0)).toBe(true);
    await b.close();
  });

  it('store.sweep over a synchronous backend removes every expired session, events and limit kept', async () => {
    const clock = new ManualClock(1_000_000);
    const store = createStore({ clock, sweepInterval: false, logger: silentLogger, idleTimeout: '1m' });
    for (let i = 0; i < 3_000; i++) await store.set(`x${i}`, { i });
    const expired: string[] = [];
    store.on('expired', (e) => expired.push(e.id));
    await clock.advance('2m');
    expect(await store.sweep({ limit: 1_234 })).toEqual({ expired: 1_234 });
    expect(await store.sweep()).toEqual({ expired: 1_766 });
    expect(new Set(expired).size).toBe(3_000);
    expect(await store.size()).toBe(0);
    await store.close();
  });
});

describe('memory: the parsed data kept on an entry follows its writes', () => {
  it('get after set, update and set again returns the data just written, frozen', async () => {
    const store = createStore({ sweepInterval: false, logger: silentLogger });
    await store.set('a', { n: 1 });
    const first = await store.get('a');
    expect(first?.data).toEqual({ n: 1 });
    expect((await store.get('a'))?.data).toBe(first?.data);
    await store.update('a', { n: 2 });
    expect((await store.get('a'))?.data).toEqual({ n: 2 });
    await store.set('a', { n: 3, list: [1] });
    const third = await store.get('a');
    expect(third?.data).toEqual({ n: 3, list: [1] });
    expect(Object.isFrozen((third?.data as { list: number[] } | undefined)?.list)).toBe(true);
    await store.close();
  });
});
