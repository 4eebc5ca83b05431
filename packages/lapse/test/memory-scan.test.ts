import { describe, expect, it } from 'vitest';
import { MemoryBackend, memory } from '../src/backends/memory/memory.js';
import { ManualClock } from '../src/core/clock.js';
import { silentLogger } from '../src/util/logger.js';
import { newRecord } from '../src/core/session.js';
import { createStore } from '../src/core/store.js';

/** Counts the walks over the backend's id map (its shards): a page must not walk every session. */
function countWalks(backend: MemoryBackend): { walks: () => number } {
  const shards = (backend as unknown as { byId: { shards: Map<string, unknown>[] } }).byId.shards;
  let walks = 0;
  shards.forEach((original, i) => {
    const counted = new Map(original);
    for (const name of ['values', 'entries', 'keys', 'forEach', Symbol.iterator] as const) {
      const fn = (counted as unknown as Record<string | symbol, (...a: unknown[]) => unknown>)[name] as (...a: unknown[]) => unknown;
      Object.defineProperty(counted, name, {
        value: (...args: unknown[]) => {
          walks++;
          return fn.apply(counted, args);
        },
      });
    }
    shards[i] = counted;
  });
  expect(shards.length).toBeGreaterThan(1);
  return { walks: () => walks };
}

const rec = (id: string, now: number, idle = 60_000) =>
  newRecord({ id, secretHash: '', userId: null, data: '{}', now, idleTimeout: idle, absoluteTimeout: 3_600_000 });

describe('memory scan uses an ordered index', () => {
  it('keys() walks pages from the index, never the whole map, and returns every live id in order', async () => {
    const clock = new ManualClock(1_000);
    const backend = memory({ clock });
    const store = createStore({ clock, backend, sweepInterval: false, logger: silentLogger });
    const ids: string[] = [];
    for (let i = 0; i < 3_000; i++) ids.push((await store.set(`k${(i * 7919) % 3_000}`, { i })).id);
    const { walks } = countWalks(backend);
    const seen: string[] = [];
    for await (const id of store.keys()) seen.push(id);
    expect(seen).toEqual([...ids].sort());
    expect(walks()).toBe(0);
    await store.close();
  });

  it('pages after a cursor skip expired and removed sessions and see ids added behind the cursor', () => {
    const b = new MemoryBackend();
    const now = 10_000;
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) b.insert(rec(id, now, id === 'c' ? 1 : 60_000), now, {});
    const first = b.scan(null, 2, now + 5);
    expect(first.map((r) => r.id)).toEqual(['a', 'b']);
    b.remove('d', now + 5, { force: true });
    b.insert(rec('bb', now + 5), now + 5, {});
    b.insert(rec('0', now + 5), now + 5, {}); // before the cursor: not in later pages
    // 'c' has expired (not swept yet), 'd' is gone; 'bb' sorts after the cursor 'b'.
    expect(b.scan('b', 10, now + 5).map((r) => r.id)).toEqual(['bb', 'e', 'f']);
    expect(b.scan('f', 10, now + 5)).toEqual([]);
    expect(b.scan('zz', 10, now + 5)).toEqual([]);
    // A cursor that is no longer an id still pages from where it sorts.
    expect(b.scan('d', 1, now + 5).map((r) => r.id)).toEqual(['e']);
  });

  it('a rotated, replaced, swept or cleared session leaves the index with it', () => {
    const b = new MemoryBackend();
    const now = 10_000;
    for (const id of ['a', 'b', 'c']) b.insert(rec(id, now), now, {});
    b.rotate('a', { id: 'z', secretHash: '' }, now, {});
    b.insert(rec('b', now), now, {}, { replace: true });
    expect(b.scan(null, 10, now).map((r) => r.id)).toEqual(['b', 'c', 'z']);
    expect(b.sweep(now + 120_000, 10)).toHaveLength(3);
    expect(b.scan(null, 10, now + 120_000)).toEqual([]);
    b.insert(rec('q', now), now, {});
    b.clear();
    expect(b.scan(null, 10, now)).toEqual([]);
  });
});
