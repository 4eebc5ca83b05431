/**
 * `lapse/testing`: the one contract every backend passes, for anyone writing a backend. The
 * test runner is injected (keyv's test-suite shape), so it runs under vitest, jest, or
 * node:test with any expect; every case runs through createStore with a ManualClock.
 * @example
 * import { describe, it, expect, afterEach } from 'vitest';
 * import { runBackendConformance } from 'lapse/testing';
 * runBackendConformance({ describe, it, expect, afterEach }, { name: 'mine', make: ({ clock }) => myBackend({ clock }) });
 */
import type { Backend } from '../core/backend.js';
import { ManualClock } from '../core/clock.js';
import { isLapseError, type LapseErrorCode } from '../core/errors.js';
import { createStore, type SessionStore, type StoreEvent, type StoreOptions } from '../core/store.js';
import { silentLogger } from '../util/logger.js';

/** The matchers the suite uses; vitest's and jest's expect both fit. */
export interface ConformanceAssertion {
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toMatchObject(expected: object): void;
  toMatch(expected: RegExp | string): void;
  toContain(item: unknown): void;
  toBeNull(): void;
  toBeUndefined(): void;
  toBeTruthy(): void;
  toBeGreaterThan(n: number): void;
  toBeLessThanOrEqual(n: number): void;
  toThrow(expected?: RegExp | string): void;
  readonly not: ConformanceAssertion;
  readonly rejects: { toThrow(expected?: RegExp | string): Promise<void> };
}

/** The test runner the suite is given: describe / it / expect / afterEach of vitest, jest or node:test (+ an expect). */
export interface ConformanceRunner {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void>): void;
  expect(actual: unknown, message?: string): ConformanceAssertion;
  afterEach(fn: () => Promise<void>): void;
}

export interface ConformanceTarget {
  /** Names the suite: `conformance: <name>`. */
  name: string;
  /** A fresh, empty backend for one test, reading time from `clock` where it needs any. */
  make(ctx: { clock: ManualClock }): Backend | Promise<Backend>;
  /** Runs after each test, once the store is closed. */
  cleanup?(): void | Promise<void>;
}

/** A fixed start in the future, so backends with native expiry (Redis) never see the past. */
export const T0 = 2_000_000_000_000;
const MIN = 60_000;

/**
 * Registers the conformance cases for one backend with the given runner.
 * @example runBackendConformance({ describe, it, expect, afterEach }, { name: 'memory', make: ({ clock }) => memory({ clock }) });
 */
export function runBackendConformance(runner: ConformanceRunner, target: ConformanceTarget): void {
  const { describe, it, afterEach } = runner;
  const expect = runner.expect.bind(runner);
  async function rejects(p: Promise<unknown>, code: LapseErrorCode): Promise<void> {
    let caught: unknown;
    try {
      await p;
    } catch (err) {
      caught = err;
    }
    expect(isLapseError(caught, code), `expected ${code}, got ${String(caught)}`).toBe(true);
  }

  describe(`conformance: ${target.name}`, () => {
    let stores: SessionStore[] = [];
    let clock: ManualClock;

    async function open(opts: StoreOptions = {}) {
      clock = new ManualClock(T0);
      const backend = await target.make({ clock });
      const store = createStore({
        backend,
        clock,
        sweepInterval: false,
        logger: silentLogger,
        ...opts,
      });
      stores.push(store);
      return store;
    }

    function collect(store: SessionStore) {
      const seen: Array<{ event: string } & StoreEvent> = [];
      for (const event of ['created', 'expired', 'evicted', 'revoked', 'rotated', 'locked', 'unlocked'] as const) {
        store.on(event, (e) => seen.push({ event, ...e }));
      }
      return seen;
    }

    afterEach(async () => {
      for (const s of stores) await s.close();
      stores = [];
      await target.cleanup?.();
    });

    describe('tokens and reads', () => {
      it('creates a session whose token validates and whose secret is not stored', async () => {
        const store = await open();
        const { token, session } = await store.create({
          userId: 'u1',
          data: { n: 1 },
          ip: '127.0.0.1',
          userAgent: 'test',
        });
        expect(token).toMatch(/^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
        expect(token.startsWith(`${session.id}.`)).toBe(true);
        expect(session).toMatchObject({
          userId: 'u1',
          data: { n: 1 },
          version: 1,
          status: 'active',
          createdAt: T0,
        });
        expect(session.meta).toEqual({ ip: '127.0.0.1', userAgent: 'test' });
        const raw = await store.backend.get(session.id, clock.now());
        expect(raw?.secretHash).toBeTruthy();
        expect(raw?.secretHash).not.toContain(token.split('.')[1]);
        const v = await store.validate(token);
        expect(v?.id).toBe(session.id);
        expect(v?.data).toEqual({ n: 1 });
      });

      it('answers null for malformed, unknown, wrong-secret and revoked tokens', async () => {
        const store = await open();
        const { token, session } = await store.create({});
        const other = await store.create({});
        for (const bad of [
          '',
          'x',
          'a.b',
          `${session.id}.${'A'.repeat(43)}`,
          `${'A'.repeat(22)}.${token.split('.')[1]}`,
          `${session.id}.${other.token.split('.')[1]}`,
          42 as unknown as string,
          `${token}x`,
        ]) {
          expect(await store.validate(bad)).toBeNull();
        }
        expect(await store.revoke(token)).toBe(true);
        expect(await store.validate(token)).toBeNull();
        expect(await store.revoke(token)).toBe(false);
      });

      it('get counts no access; validate does', async () => {
        const store = await open({ idleTimeout: '10m', touchInterval: 0 });
        const { token, session } = await store.create({});
        await clock.advance('1m');
        expect((await store.get(session.id))?.accessCount).toBe(0);
        expect((await store.get(session.id))?.lastAccessedAt).toBe(T0);
        await store.validate(token);
        const after = await store.get(session.id);
        expect(after?.accessCount).toBe(1);
        expect(after?.lastAccessedAt).toBe(T0 + MIN);
      });
    });

    describe('expiry', () => {
      it('expires after the idle timeout, exactly at expiresAt', async () => {
        const store = await open({ idleTimeout: '10m', absoluteTimeout: '1h' });
        const { token, session } = await store.create({});
        expect(session.expiresAt).toBe(T0 + 10 * MIN);
        await clock.advance(10 * MIN - 1);
        expect(await store.get(session.id)).not.toBeNull();
        await clock.advance(1);
        expect(await store.get(session.id)).toBeNull();
        expect(await store.validate(token)).toBeNull();
        expect(await store.has(session.id)).toBe(false);
      });

      it('validate slides the idle expiry but never past the absolute cap', async () => {
        const store = await open({
          idleTimeout: '10m',
          absoluteTimeout: '25m',
          touchInterval: 0,
        });
        const { token, session } = await store.create({});
        for (let i = 0; i < 4; i++) {
          await clock.advance('5m');
          const s = await store.validate(token);
          expect(s).not.toBeNull();
          expect(s?.expiresAt).toBe(Math.min(clock.now() + 10 * MIN, T0 + 25 * MIN));
        }
        await clock.advance('4m'); // T0+24m
        expect((await store.validate(token))?.expiresAt).toBe(T0 + 25 * MIN);
        await clock.advance('1m'); // absolute cap reached while idle window is still open
        expect(await store.validate(token)).toBeNull();
        expect(await store.get(session.id)).toBeNull();
      });

      it('per-session idle and absolute timeouts override the store defaults', async () => {
        const store = await open({
          idleTimeout: '30m',
          absoluteTimeout: '12h',
        });
        const { session } = await store.create({
          idleTimeout: '2m',
          absoluteTimeout: '1h',
        });
        expect(session.expiresAt).toBe(T0 + 2 * MIN);
        expect(session.absoluteExpiresAt).toBe(T0 + 60 * MIN);
        await clock.advance('2m');
        expect(await store.get(session.id)).toBeNull();
        await rejects(store.create({ idleTimeout: 'soon' }), 'LAPSE_INVALID_INPUT');
      });

      it('coalesces expiry writes to once per touchInterval and still counts every access', async () => {
        const store = await open({ idleTimeout: '10m', touchInterval: '1m' });
        const { token, session } = await store.create({});
        await clock.advance('30s');
        await store.validate(token);
        await store.validate(token);
        let raw = await store.backend.get(session.id, clock.now());
        expect(raw?.lastAccessedAt).toBe(T0); // not written yet
        await clock.advance('31s'); // 61s since the last write
        const s = await store.validate(token);
        raw = await store.backend.get(session.id, clock.now());
        expect(raw?.lastAccessedAt).toBe(T0 + 61_000);
        expect(raw?.accessCount).toBe(3);
        expect(s?.accessCount).toBe(3);
        expect(s?.expiresAt).toBe(T0 + 61_000 + 10 * MIN);
      });

      it('the default touchInterval is idleTimeout/10 capped at one minute', async () => {
        const store = await open({ idleTimeout: '5m' }); // 30 s
        const { token, session } = await store.create({});
        await clock.advance('29s');
        await store.validate(token);
        expect((await store.backend.get(session.id, clock.now()))?.lastAccessedAt).toBe(T0);
        await clock.advance('1s');
        await store.validate(token);
        expect((await store.backend.get(session.id, clock.now()))?.lastAccessedAt).toBe(T0 + 30_000);
      });

      it('sweep removes expired sessions with their reason and reads never return them before it', async () => {
        const store = await open({
          idleTimeout: '10m',
          absoluteTimeout: '15m',
          touchInterval: 0,
        });
        const seen = collect(store);
        const idle = await store.create({ userId: 'a' });
        const abs = await store.create({ userId: 'b' });
        const live = await store.create({
          userId: 'c',
          idleTimeout: '1h',
          absoluteTimeout: '2h',
        });
        await clock.advance('9m');
        await store.validate(abs.token); // slides abs to T0+19m, capped at T0+15m
        await clock.advance('6m'); // T0+15m: idle (T0+10m) and abs (T0+15m) expired
        expect(await store.get(idle.session.id)).toBeNull();
        expect((await store.stats()).sessions).toBe(3); // still stored until swept
        expect(await store.size()).toBe(1);
        const { expired } = await store.sweep();
        expect(expired).toBe(2);
        const reasons = Object.fromEntries(seen.filter((e) => e.event === 'expired').map((e) => [e.userId, e.reason]));
        expect(reasons).toEqual({ a: 'idle', b: 'absolute' });
        expect((await store.stats()).sessions).toBe(1);
        expect((await store.stats()).users).toBe(1);
        expect(await store.get(live.session.id)).not.toBeNull();
        expect((await store.sweep()).expired).toBe(0);
      });

      it('sweep honours its limit and removes soonest-expired first', async () => {
        const store = await open({ idleTimeout: '1m' });
        const ids: string[] = [];
        for (let i = 0; i < 25; i++) {
          ids.push((await store.create({})).session.id);
          await clock.advance(1000);
        }
        await clock.advance('2m');
        const seen = collect(store);
        expect((await store.sweep({ limit: 10 })).expired).toBe(10);
        expect(seen.map((e) => e.id)).toEqual(ids.slice(0, 10));
        expect((await store.sweep()).expired).toBe(15);
        expect(await store.size()).toBe(0);
      });
    });

    describe('caps and eviction', () => {
      it('maxSessions evicts the least recently used session', async () => {
        const store = await open({
          maxSessions: 3,
          idleTimeout: '1h',
          touchInterval: 0,
        });
        const seen = collect(store);
        const a = await store.create({});
        await clock.advance(1000);
        const b = await store.create({});
        await clock.advance(1000);
        const c = await store.create({});
        await clock.advance(1000);
        await store.validate(a.token); // a is now the most recent
        await clock.advance(1000);
        const d = await store.create({});
        expect(await store.get(b.session.id)).toBeNull();
        for (const s of [a, c, d]) expect(await store.get(s.session.id)).not.toBeNull();
        expect(seen.filter((e) => e.event === 'evicted')).toMatchObject([{ id: b.session.id, reason: 'evicted' }]);
        expect(await store.size()).toBe(3);
      });

      it('maxSessions removes an expired session before any live one', async () => {
        const store = await open({ maxSessions: 3, idleTimeout: '1h' });
        const seen = collect(store);
        const old = await store.create({});
        await clock.advance(1000);
        const short = await store.create({ idleTimeout: '1m' });
        await clock.advance(1000);
        await store.create({});
        await clock.advance('2m'); // short has expired; old is the LRU live one
        await store.create({});
        expect(await store.get(old.session.id)).not.toBeNull();
        expect(seen.filter((e) => e.event === 'evicted')).toEqual([]);
        expect(seen.filter((e) => e.event === 'expired')).toMatchObject([{ id: short.session.id, reason: 'idle' }]);
      });

      it("maxSessionsPerUser removes that user's least recently used session", async () => {
        const store = await open({
          maxSessionsPerUser: 2,
          idleTimeout: '1h',
          touchInterval: 0,
        });
        const seen = collect(store);
        const u1 = await store.create({ userId: 'u' });
        await clock.advance(1000);
        const u2 = await store.create({ userId: 'u' });
        const other = await store.create({ userId: 'v' });
        await clock.advance(1000);
        await store.validate(u1.token);
        await clock.advance(1000);
        const u3 = await store.create({ userId: 'u' });
        expect(await store.get(u2.session.id)).toBeNull();
        expect((await store.listUser('u')).map((s) => s.id)).toEqual([u3.session.id, u1.session.id]);
        expect(await store.get(other.session.id)).not.toBeNull();
        expect(seen.filter((e) => e.event === 'evicted')).toMatchObject([{ id: u2.session.id, userId: 'u', reason: 'evicted' }]);
      });
    });

    describe('leases', () => {
      it('a lease blocks writers without it and lets the holder write', async () => {
        const store = await open();
        const { token, session } = await store.create({ data: { n: 0 } });
        const lease = await store.lock(session.id, {
          owner: 'worker-1',
          ttl: '10s',
        });
        expect(lease.owner).toBe('worker-1');
        expect(lease.expiresAt).toBe(T0 + 10_000);
        const seen = await store.get(session.id);
        expect(seen?.status).toBe('locked');
        expect(seen?.lock).toEqual({
          owner: 'worker-1',
          expiresAt: T0 + 10_000,
        });
        expect((await store.validate(token))?.status).toBe('locked');
        await rejects(store.update(session.id, { n: 1 }), 'LAPSE_LOCKED');
        await rejects(store.delete(session.id), 'LAPSE_LOCKED');
        await rejects(store.rotate(token), 'LAPSE_LOCKED');
        await rejects(store.lock(session.id), 'LAPSE_LOCKED');
        await rejects(store.update(session.id, { n: 1 }, { lease: lease.fence + 1 }), 'LAPSE_LOCKED');
        expect((await store.update(session.id, { n: 1 }, { lease })).data).toEqual({ n: 1 });
        expect((await store.stats()).locked).toBe(1);
        expect(await lease.release()).toBe(true);
        expect(await lease.release()).toBe(false);
        expect((await store.get(session.id))?.status).toBe('active');
        expect((await store.update(session.id, { n: 2 })).version).toBe(3);
      });

      it('fencing numbers grow with every grant and a stale holder is refused', async () => {
        const store = await open();
        const { session } = await store.create({});
        const other = await store.create({});
        const first = await store.lock(session.id, { ttl: '5s' });
        const elsewhere = await store.lock(other.session.id, { ttl: '5s' });
        expect(elsewhere.fence).toBeGreaterThan(first.fence);
        await clock.advance('5s'); // first ends by itself
        expect((await store.get(session.id))?.status).toBe('active');
        const second = await store.lock(session.id, { ttl: '5s' });
        expect(second.fence).toBeGreaterThan(elsewhere.fence);
        await rejects(store.update(session.id, { stale: true }, { lease: first }), 'LAPSE_LOCKED');
        await rejects(first.extend(), 'LAPSE_LOCKED');
        await second.extend('20s');
        expect(second.expiresAt).toBe(clock.now() + 20_000);
        await clock.advance('10s');
        expect((await store.get(session.id))?.status).toBe('locked');
      });

      it('lock with wait is woken by the release', async () => {
        const store = await open();
        const { session } = await store.create({});
        const held = await store.lock(session.id, { ttl: '1m' });
        let got: number | undefined;
        const waiting = store.lock(session.id, { wait: '30s', owner: 'second' }).then((l) => {
          got = l.fence;
          return l;
        });
        await clock.advance('1s');
        expect(got).toBeUndefined();
        await held.release();
        await clock.advance(0);
        const second = await waiting;
        expect(got).toBeGreaterThan(held.fence);
        expect(second.owner).toBe('second');
      });

      it('lock with wait times out with LAPSE_LOCK_TIMEOUT, and takes over a lease that ends', async () => {
        const store = await open();
        const { session } = await store.create({});
        await store.lock(session.id, { ttl: '1m' });
        const timeout = rejects(store.lock(session.id, { wait: '10s' }), 'LAPSE_LOCK_TIMEOUT');
        await clock.advance('11s');
        await timeout;
        const later = store.lock(session.id, { wait: '2m', owner: 'patient' });
        await clock.advance('50s'); // the first lease ends at T0+60s
        expect((await later).owner).toBe('patient');
      });

      it('withLock releases the lease even when the function throws', async () => {
        const store = await open();
        const { session } = await store.create({ data: 1 });
        await expect(store.withLock(session.id, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
        expect((await store.get(session.id))?.status).toBe('active');
        const out = await store.withLock(session.id, async (lease) => (await store.update(session.id, 2, { lease })).version);
        expect(out).toBe(2);
        await rejects(store.lock('no-such-session'), 'LAPSE_NOT_FOUND');
      });
    });

    describe('updates', () => {
      it('expectedVersion that does not match is a conflict and writes nothing', async () => {
        const store = await open();
        const { session } = await store.create({ data: { v: 'a' } });
        const s2 = await store.update(session.id, { v: 'b' }, { expectedVersion: 1 });
        expect(s2.version).toBe(2);
        await rejects(store.update(session.id, { v: 'c' }, { expectedVersion: 1 }), 'LAPSE_VERSION_CONFLICT');
        const now = await store.get(session.id);
        expect(now?.data).toEqual({ v: 'b' });
        expect(now?.version).toBe(2);
        await rejects(store.update('missing', {}), 'LAPSE_NOT_FOUND');
      });

      it('concurrent function updates never lose one another', async () => {
        const store = await open();
        const { session } = await store.create({ data: { n: 0 } });
        const bump = (prev: { n: number }) => ({ n: prev.n + 1 });
        await Promise.all(Array.from({ length: 20 }, () => store.update<{ n: number }>(session.id, bump)));
        const s = await store.get(session.id);
        expect(s?.data).toEqual({ n: 20 });
        // Updates queued behind the one in flight are written together: one version per write.
        expect(s?.version).toBeGreaterThan(1);
        expect(s?.version).toBeLessThanOrEqual(21);
      });

      it('rejects data that is not JSON and keeps what was stored', async () => {
        const store = await open();
        const { session } = await store.create({ data: { ok: true } });
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        const bad: unknown[] = [
          () => 1,
          undefined,
          Number.NaN,
          Number.POSITIVE_INFINITY,
          new Date(),
          new Map(),
          10n,
          Symbol('s'),
          cyclic,
          { nested: [1, undefined] },
        ];
        for (const value of bad) {
          // A function given to update() is the function form, so it is checked by its result.
          await rejects(store.update(session.id, typeof value === 'function' ? () => value : value), 'LAPSE_INVALID_INPUT');
          // create() treats data: undefined as "no data" (an empty object), like an absent field.
          if (value !== undefined) await rejects(store.create({ data: value }), 'LAPSE_INVALID_INPUT');
          await rejects(store.set('k', value), 'LAPSE_INVALID_INPUT');
        }
        expect(await store.size()).toBe(1);
        expect((await store.get(session.id))?.data).toEqual({ ok: true });
        await rejects(store.create({ data: 'x'.repeat(300 * 1024) }), 'LAPSE_PAYLOAD_TOO_LARGE');
        expect(await store.size()).toBe(1);
      });
    });

    describe('rotate and revoke', () => {
      it('rotate gives a new id and secret; the old token is dead at once', async () => {
        const store = await open({ idleTimeout: '10m' });
        const seen = collect(store);
        const { token, session } = await store.create({
          userId: 'u',
          data: { cart: [1] },
        });
        await clock.advance('1m');
        const next = await store.rotate(token);
        expect(next.session.id).not.toBe(session.id);
        expect(next.session).toMatchObject({
          userId: 'u',
          data: { cart: [1] },
          createdAt: T0,
          absoluteExpiresAt: session.absoluteExpiresAt,
        });
        expect(await store.validate(token)).toBeNull();
        expect(await store.get(session.id)).toBeNull();
        expect((await store.validate(next.token))?.id).toBe(next.session.id);
        expect(seen.filter((e) => e.event === 'rotated')).toMatchObject([{ id: session.id, newId: next.session.id, reason: 'rotated' }]);
        await rejects(store.rotate(token), 'LAPSE_UNAUTHORIZED');
        expect((await store.listUser('u')).map((s) => s.id)).toEqual([next.session.id]);
      });

      it('revokeUser ends every session of a user except one, and delete ends one', async () => {
        const store = await open();
        const seen = collect(store);
        const keep = await store.create({ userId: 'u' });
        const s2 = await store.create({ userId: 'u' });
        await store.create({ userId: 'u' });
        const other = await store.create({ userId: 'v' });
        await store.lock(s2.session.id); // a lease does not protect against revocation
        expect(await store.revokeUser('u', { except: keep.session.id })).toBe(2);
        expect((await store.listUser('u')).map((s) => s.id)).toEqual([keep.session.id]);
        expect(seen.filter((e) => e.event === 'revoked').every((e) => e.reason === 'revoked' && e.userId === 'u')).toBe(true);
        expect(await store.delete(other.session.id)).toBe(true);
        expect(await store.delete(other.session.id)).toBe(false);
        expect(await store.revokeUser('nobody')).toBe(0);
        expect((await store.stats()).users).toBe(1);
        expect(await store.listUser('v')).toEqual([]);
      });

      it('listUser returns live sessions, most recently used first', async () => {
        const store = await open({ idleTimeout: '10m', touchInterval: 0 });
        const a = await store.create({ userId: 'u' });
        await clock.advance(1000);
        const b = await store.create({ userId: 'u' });
        await clock.advance(1000);
        const c = await store.create({ userId: 'u', idleTimeout: '5s' });
        await clock.advance(1000);
        await store.validate(a.token);
        await clock.advance('5s');
        expect((await store.listUser('u')).map((s) => s.id)).toEqual([a.session.id, b.session.id]);
        // c idled out: gone from the list and from reads, not only from the order.
        expect(await store.get(c.session.id)).toBeNull();
      });
    });

    describe('Map-like face', () => {
      it('set / has / size / keys / values / entries / clear', async () => {
        const store = await open({ idleTimeout: '10m' });
        const s = await store.set('cart:1', { items: 1 }, { userId: 'u' });
        expect(s).toMatchObject({
          id: 'cart:1',
          version: 1,
          userId: 'u',
          data: { items: 1 },
        });
        await clock.advance('1m');
        const s2 = await store.set('cart:1', { items: 2 });
        expect(s2).toMatchObject({
          version: 2,
          createdAt: T0,
          data: { items: 2 },
        });
        await store.set('cart:2', [1, 2], { idleTimeout: '30s' });
        await store.set('cart:3', 'x');
        expect(await store.has('cart:1')).toBe(true);
        expect(await store.has('nope')).toBe(false);
        expect(await store.size()).toBe(3);
        const keys: string[] = [];
        for await (const k of store.keys()) keys.push(k);
        expect(keys).toEqual(['cart:1', 'cart:2', 'cart:3']);
        const values: unknown[] = [];
        for await (const v of store.values()) values.push(v.data);
        expect(values).toEqual([{ items: 2 }, [1, 2], 'x']);
        await clock.advance('31s');
        const entries: string[] = [];
        for await (const [k] of store.entries()) entries.push(k);
        expect(entries).toEqual(['cart:1', 'cart:3']);
        expect(await store.size()).toBe(2);
        expect(await store.validate('cart:1')).toBeNull(); // set() sessions have no token
        await store.clear();
        expect(await store.size()).toBe(0);
        expect(await store.has('cart:1')).toBe(false);
      });

      it('pages through many sessions in id order without repeats', async () => {
        const store = await open();
        const ids = new Set<string>();
        for (let i = 0; i < 1203; i++) ids.add((await store.create({})).session.id);
        const seen: string[] = [];
        for await (const k of store.keys()) seen.push(k);
        expect(seen.length).toBe(1203);
        expect(new Set(seen)).toEqual(ids);
        expect([...seen].sort()).toEqual(seen);
        const first = await store.page({ limit: 100 });
        const second = await store.page({ cursor: first.cursor, limit: 100 });
        expect(second.sessions[0]?.id).toBe(seen[100]);
      });
    });

    describe('optional parts: onUnlock and jobLease', () => {
      it('onUnlock, when offered, tells a listener the id of a released lease', async () => {
        const store = await open({ idleTimeout: '10m' });
        const backend = store.backend;
        if (!backend.onUnlock) return;
        const { session } = await store.create({ userId: 'u' });
        const heard: string[] = [];
        let wake: (() => void) | undefined;
        const stop = backend.onUnlock((id) => {
          heard.push(id);
          wake?.();
        });
        try {
          // A subscription over the network (Redis pub/sub, LISTEN) may miss releases made before
          // it is up: release again, a bounded number of times, each wait bounded too.
          for (let i = 0; i < 40 && !heard.includes(session.id); i++) {
            const heardOne = new Promise<void>((resolve) => {
              wake = resolve;
              setTimeout(resolve, 250).unref?.();
            });
            const lease = await store.lock(session.id, { ttl: '10s' });
            await lease.release();
            await heardOne;
          }
          expect(heard).toContain(session.id);
          expect(heard.filter((id) => id !== session.id)).toEqual([]);
        } finally {
          stop();
        }
      });

      it('jobLease, when offered, grants a key to one holder; renew and release need its token', async () => {
        const store = await open();
        const lease = store.backend.jobLease?.();
        if (!lease) return;
        const key = `conformance-job-${Math.random().toString(36).slice(2)}`;
        const token = await lease.acquire(key, MIN);
        expect(typeof token).toBe('string');
        expect(await lease.acquire(key, MIN)).toBeNull();
        expect(await lease.renew(key, 'not-the-token', MIN)).toBe(false);
        expect(await lease.renew(key, token as string, MIN)).toBe(true);
        await lease.release(key, 'not-the-token');
        expect(await lease.acquire(key, MIN)).toBeNull();
        await lease.release(key, token as string);
        expect(await lease.renew(key, token as string, MIN)).toBe(false);
        const next = await lease.acquire(key, MIN);
        expect(typeof next).toBe('string');
        expect(next).not.toBe(token);
        await lease.release(key, next as string);
      });
    });

    describe('optional parts: scanUsers', () => {
      it('scanUsers, when offered, finds users by id prefix in byte order, a page after a cursor, with counts', async () => {
        const store = await open({ idleTimeout: '10m' });
        const backend = store.backend;
        if (!backend.scanUsers) return;
        const scan = async (prefix: string, after: string | null, limit: number) =>
          (await backend.scanUsers?.(prefix, after, limit, clock.now())) ?? [];
        const ids = async (prefix: string, after: string | null, limit: number) => (await scan(prefix, after, limit)).map((u) => u.userId);
        // Byte order, whatever a database's collation says ('-' and '_' count, case counts).
        const users = ['bob', 'alz', 'al_x', 'alina', 'Al', 'al-2', 'alice', 'al'];
        const made = new Map<string, string[]>();
        for (const u of users) {
          for (let i = 0; i < (u === 'alice' ? 3 : 1); i++) {
            const { session } = await store.create({ userId: u });
            made.set(u, [...(made.get(u) ?? []), session.id]);
          }
        }
        await store.create({}); // a session without a user is no user
        expect(await scan('al', null, 10)).toEqual([
          { userId: 'al', sessions: 1 },
          { userId: 'al-2', sessions: 1 },
          { userId: 'al_x', sessions: 1 },
          { userId: 'alice', sessions: 3 },
          { userId: 'alina', sessions: 1 },
          { userId: 'alz', sessions: 1 },
        ]);
        expect(await ids('', null, 100)).toEqual(['Al', 'al', 'al-2', 'al_x', 'alice', 'alina', 'alz', 'bob']);
        expect(await ids('al', null, 2)).toEqual(['al', 'al-2']);
        expect(await ids('al', 'al-2', 2)).toEqual(['al_x', 'alice']);
        expect(await ids('al', 'Al', 2)).toEqual(['al', 'al-2']); // a cursor before the prefix starts at it
        expect(await ids('ali', null, 10)).toEqual(['alice', 'alina']);
        expect(await ids('alice', null, 10)).toEqual(['alice']);
        expect(await ids('zed', null, 10)).toEqual([]);
        expect(await ids('', 'alz', 10)).toEqual(['bob']);
        expect(await ids('al', null, 0)).toEqual([]);
        // Paging through every user, a page of 3 at a time: each once, in order.
        const seen: string[] = [];
        let after: string | null = null;
        for (let i = 0; i < 10; i++) {
          const page = await ids('', after, 3);
          seen.push(...page);
          if (page.length < 3) break;
          after = page[page.length - 1] as string;
        }
        expect(seen).toEqual(['Al', 'al', 'al-2', 'al_x', 'alice', 'alina', 'alz', 'bob']);
        // A user leaves the index with their last session, however it ends.
        await store.revokeUser('alice');
        await store.delete((made.get('alz') as string[])[0] as string);
        expect((await scan('ali', null, 10)).map((u) => u.userId)).toEqual(['alina']);
        await store.delete((made.get('alice') as string[])[0] as string);
        expect(await ids('al', null, 10)).toEqual(['al', 'al-2', 'al_x', 'alina']);
        const { session: more } = await store.create({ userId: 'alina' });
        expect(await scan('alina', null, 10)).toEqual([{ userId: 'alina', sessions: 2 }]);
        await store.delete(more.id);
        await clock.advance('11m');
        await store.sweep({ limit: 100 });
        expect(await ids('', null, 100)).toEqual([]);
        await store.create({ userId: 'carol' });
        expect(await ids('', null, 100)).toEqual(['carol']);
        await store.clear();
        expect(await ids('', null, 100)).toEqual([]);
      });
    });

    describe('events and lifecycle', () => {
      it('emits every event with { id, userId, reason, at }', async () => {
        const store = await open({ idleTimeout: '1m', maxSessions: 2 });
        const seen = collect(store);
        const a = await store.create({ userId: 'u' });
        const lease = await store.lock(a.session.id);
        await lease.release();
        const b = await store.create({ userId: 'u' });
        await store.rotate(b.token);
        await store.create({ userId: 'w' }); // evicts the LRU one (a)
        await store.revokeUser('w');
        await clock.advance('2m');
        await store.sweep();
        const kinds = seen.map((e) => e.event);
        for (const k of ['created', 'locked', 'unlocked', 'rotated', 'evicted', 'revoked', 'expired']) expect(kinds).toContain(k);
        for (const e of seen) {
          expect(typeof e.id).toBe('string');
          expect(typeof e.reason).toBe('string');
          expect(typeof e.at).toBe('number');
          // Every one of these sessions had a user: each event names it, not null or missing.
          expect(['u', 'w']).toContain(e.userId);
        }
        expect(seen.filter((e) => e.event === 'revoked').map((e) => e.userId)).toEqual(['w']);
        const stats = await store.stats();
        expect(stats).toMatchObject({
          created: 3,
          rotated: 1,
          evicted: 1,
          revoked: 1,
          expired: 1,
          sessions: 0,
        });
      });

      it('after close every call is LAPSE_CLOSED and close twice is fine', async () => {
        const store = await open();
        const { token, session } = await store.create({});
        await store.close();
        await store.close();
        await rejects(store.validate(token), 'LAPSE_CLOSED');
        await rejects(store.get(session.id), 'LAPSE_CLOSED');
        await rejects(store.create({}), 'LAPSE_CLOSED');
        await rejects(store.set('k', 1), 'LAPSE_CLOSED');
        await rejects(store.size(), 'LAPSE_CLOSED');
        await rejects(store.sweep(), 'LAPSE_CLOSED');
      });

      it('bad ids and inputs are LAPSE_INVALID_INPUT', async () => {
        const store = await open();
        await rejects(store.get(''), 'LAPSE_INVALID_INPUT');
        await rejects(store.get(5 as unknown as string), 'LAPSE_INVALID_INPUT');
        await rejects(store.create({ userId: '' }), 'LAPSE_INVALID_INPUT');
        await rejects(store.create({ nope: 1 } as never), 'LAPSE_INVALID_INPUT');
        await rejects(store.revokeUser(''), 'LAPSE_INVALID_INPUT');
        await rejects(store.lock('x', { ttl: -5 }), 'LAPSE_INVALID_INPUT');
        // A NUL in request metadata is refused on its own; a create issued beside it is written.
        const bad = store.create({ userAgent: 'ua\u0000' });
        const good = store.create({ userAgent: 'ua/1', ip: '127.0.0.1' });
        await rejects(bad, 'LAPSE_INVALID_INPUT');
        await rejects(store.create({ ip: '\u0000' }), 'LAPSE_INVALID_INPUT');
        const { session } = await good;
        expect((await store.get(session.id))?.meta).toEqual({ ip: '127.0.0.1', userAgent: 'ua/1' });
        expect(await store.size()).toBe(1);
      });
    });
  });
}
