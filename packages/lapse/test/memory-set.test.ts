import { describe, expect, it } from 'vitest';
import { memory } from '../src/backends/memory/memory.js';
import { ManualClock } from '../src/core/clock.js';
import { encodeData } from '../src/core/data.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore } from '../src/core/store.js';

/** store.set on a live session writes into its entry (memory backend): every index must still agree. */
describe('memory set: an upsert of a live session, in place', () => {
  const open = () => {
    const clock = new ManualClock(1_000_000);
    const backend = memory({ clock });
    const store = createStore({ clock, backend, sweepInterval: false, logger: silentLogger, idleTimeout: '10m', maxSessionsPerUser: 2 });
    return { clock, store };
  };

  it('an upsert of the same data keeps its parsed copy; other data is parsed anew', async () => {
    const { store } = open();
    const first = await store.set('a', { n: 1, tags: ['x'] });
    const same = await store.set('a', { n: 1, tags: ['x'] });
    expect(same.version).toBe(2);
    expect(same.data).toBe(first.data);
    expect(Object.isFrozen((same.data as { tags: string[] }).tags)).toBe(true);
    const other = await store.set('a', { n: 2, tags: ['x'] });
    expect(other.data).toEqual({ n: 2, tags: ['x'] });
    expect((await store.get('a'))?.data).toBe(other.data);
    await store.close();
  });

  it('moving a session to another user updates both users, and the new user cap applies', async () => {
    const { store } = open();
    await store.set('a', { n: 1 }, { userId: 'u1' });
    await store.set('b', { n: 1 }, { userId: 'u2' });
    await store.set('c', { n: 1 }, { userId: 'u2' });
    const moved = await store.set('a', { n: 2 }, { userId: 'u2' });
    expect(moved.version).toBe(2);
    expect(moved.userId).toBe('u2');
    expect(await store.listUser('u1')).toEqual([]);
    // u2 held b and c (cap 2): its least recently used one (b) made room for a.
    expect((await store.listUser('u2')).map((s) => s.id)).toEqual(['a', 'c']);
    expect(await store.get('b')).toBeNull();
    expect((await store.stats()).users).toBe(1);
    await store.close();
  });

  it('a user over the cap (stored under a higher one) keeps its most recent sessions when it writes again', async () => {
    const clock = new ManualClock(1_000_000);
    const backend = memory({ clock });
    // Five sessions of one user stored with no cap, then a store on the same backend with a cap of 2.
    const before = createStore({ clock, backend, sweepInterval: false, logger: silentLogger, idleTimeout: '10m', touchInterval: 0 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) {
      await before.set(id, { id }, { userId: 'u' });
      await clock.advance(1000);
    }
    // A write moves b past c, d and e in recency.
    await before.set('b', { id: 'b', written: true }, { userId: 'u' });
    const capped = createStore({ clock, backend, sweepInterval: false, logger: silentLogger, idleTimeout: '10m', maxSessionsPerUser: 2 });
    const evicted: string[] = [];
    capped.on('evicted', (e) => evicted.push(e.id));
    await capped.set('f', { id: 'f' }, { userId: 'u' });
    expect((await capped.listUser('u')).map((s) => s.id)).toEqual(['f', 'b']);
    expect(evicted).toEqual(['a', 'c', 'd', 'e']);
    expect((await capped.stats()).sessions).toBe(2);
    await capped.close();
  });

  it('an upsert written in place reports what it evicted; a wrapper that answers it with a promise gets the same steps', async () => {
    const clock = new ManualClock(1_000_000);
    const target = memory({ clock });
    let broken = false;
    // A proxy that makes upsertLive asynchronous, as an instrumenting wrapper might, and can fail it.
    const backend = new Proxy(target, {
      get(t, prop, receiver) {
        const v = Reflect.get(t, prop, receiver);
        if (prop !== 'upsertLive' || typeof v !== 'function') return typeof v === 'function' ? v.bind(t) : v;
        return (...args: unknown[]) => (broken ? Promise.reject(new Error('ECONNRESET')) : Promise.resolve(v.apply(t, args)));
      },
    });
    const store = createStore({ clock, backend, sweepInterval: false, logger: silentLogger, idleTimeout: '10m', maxSessionsPerUser: 1 });
    const evicted: string[] = [];
    store.on('evicted', (e) => evicted.push(e.id));
    await store.set('a', { n: 1 }, { userId: 'u1' });
    await store.set('b', { n: 1 }, { userId: 'u2' });
    const moved = await store.set('a', { n: 2 }, { userId: 'u2' });
    expect(moved).toMatchObject({ id: 'a', version: 2, userId: 'u2', data: { n: 2 } });
    expect(evicted).toEqual(['b']);
    // No live session with that id: the wrapper answers undefined, and the set inserts.
    expect((await store.set('c', { n: 1 })).version).toBe(1);
    broken = true;
    await expect(store.set('a', { n: 3 })).rejects.toMatchObject({ code: 'LAPSE_BACKEND_UNAVAILABLE' });
    broken = false;
    expect((await store.get('a'))?.data).toEqual({ n: 2 });
    await store.close();
  });

  it('an expiry moved earlier by a shorter idleTimeout is swept at the new time, once', async () => {
    const { clock, store } = open();
    await store.set('a', { n: 1 });
    const short = await store.set('a', { n: 2 }, { idleTimeout: '1m' });
    expect(short.expiresAt).toBe(clock.now() + 60_000);
    await clock.advance('2m');
    expect(await store.get('a')).toBeNull();
    expect(await store.sweep()).toEqual({ expired: 1 });
    expect(await store.sweep()).toEqual({ expired: 0 });
    expect(await store.size()).toBe(0);
    await store.close();
  });

  it('keeps createdAt, the lease, and the id order; returns a frozen snapshot apart from the caller data', async () => {
    const { clock, store } = open();
    const first = await store.set('a', { n: 1 });
    await clock.advance('1s');
    const lease = await store.lock('a');
    await expect(store.set('a', { n: 2 })).rejects.toMatchObject({ code: 'LAPSE_LOCKED' });
    const input = { n: 3, list: [1] };
    const next = await store.set('a', input, { lease });
    expect(next.createdAt).toBe(first.createdAt);
    expect(next.status).toBe('locked');
    input.list.push(2);
    expect(next.data).toEqual({ n: 3, list: [1] });
    expect(Object.isFrozen((next.data as { list: number[] }).list)).toBe(true);
    const keys: string[] = [];
    for await (const k of store.keys()) keys.push(k);
    expect(keys).toEqual(['a']);
    await store.close();
  });
});

describe('encodeData', () => {
  it('names where a value is not JSON, after the fast check said no', () => {
    const cyclic: Record<string, unknown> = { a: { b: [1, 2] } };
    (cyclic.a as Record<string, unknown>).self = cyclic;
    expect(() => encodeData(cyclic, 1e6)).toThrow(/\$\.a\.self is a cycle/);
    expect(() => encodeData({ a: [1, Number.NaN] }, 1e6)).toThrow(/\$\.a\[1\] is NaN/);
    expect(() => encodeData({ d: new Date(0) }, 1e6)).toThrow(/\$\.d is a Date object/);
    // The same object twice (not a cycle) is JSON, and a failed check leaves nothing behind.
    const shared = { x: 1 };
    expect(encodeData({ p: shared, q: [shared] }, 1e6)).toBe('{"p":{"x":1},"q":[{"x":1}]}');
    expect(encodeData('text', 1e6)).toBe('"text"');
  });
});
