/**
 * The store contract, shaped like the peer stores' own lifecycle tests (connect-redis,
 * better-sqlite3-session-store): set/get, an expiry in the past removes, touch extends,
 * length/ids/all/destroy/clear, 1,000 sessions. Callback and promise forms, on every backend.
 */
import type { SessionData } from 'express-session';
import { afterEach, describe, expect, it } from 'vitest';
import type { Backend } from '../src/core/backend.js';
import { ManualClock } from '../src/core/clock.js';
import { isLapseError } from '../src/core/errors.js';
import { applyChanges, LapseStore } from '../src/integrations/express-session.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore, type SessionStore } from '../src/core/store.js';
import { flakyBackend } from '../../../test/helpers/flaky-backend.js';
import { sessionBackends } from '../../../test/helpers/session-backends.js';

const closers: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});
const makers = sessionBackends(closers);

/** A session as express-session saves it: a Cookie in its JSON form plus app keys. */
function sess(extra: Record<string, unknown> = {}, maxAge = 60_000): SessionData {
  const expires = new Date(Date.now() + maxAge);
  return { cookie: { originalMaxAge: maxAge, expires, httpOnly: true, path: '/' }, ...extra } as unknown as SessionData;
}

/** Calls a callback-style method and checks the callback runs exactly once. */
function once<T>(call: (cb: (err: unknown, v?: T) => void) => void): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    let calls = 0;
    call((err, v) => {
      calls++;
      if (calls > 1) throw new Error('callback completed twice');
      setImmediate(() => (calls === 1 ? (err ? reject(err) : resolve(v)) : reject(new Error('callback completed twice'))));
    });
  });
}

for (const [kind, make] of Object.entries(makers) as Array<[string, (clock: ManualClock) => Backend]>) {
  describe(`LapseStore contract on ${kind}`, () => {
    function setup(): { ls: LapseStore; store: SessionStore; clock: ManualClock } {
      const clock = new ManualClock(Date.now());
      const store = createStore({ backend: make(clock), clock, sweepInterval: false, logger: silentLogger });
      closers.push(() => store.close());
      return { ls: new LapseStore({ store }), store, clock };
    }

    it('set then get, with callbacks; cookie dates come back as express-session stores them', async () => {
      const { ls } = setup();
      const s = sess({ user: 'u1' });
      await once((cb) => ls.set('123', s, cb));
      const got = (await once<SessionData | null>((cb) => ls.get('123', cb))) as unknown as Record<string, { expires?: unknown }>;
      expect(got.user).toBe('u1');
      expect(got.cookie?.expires).toBe((s.cookie.expires as Date).toISOString());
      expect(await once((cb) => ls.get('nope', cb))).toBeNull();
    });

    it("keeps both writers' keys when express-session's originalMaxAge reads a millisecond apart", async () => {
      const { ls } = setup();
      await ls.set('w', sess({}, 86_400_000));
      const a = (await ls.get('w')) as unknown as Record<string, unknown> & { cookie: { originalMaxAge: number } };
      const b = (await ls.get('w')) as unknown as Record<string, unknown> & { cookie: { originalMaxAge: number } };
      // A Cookie made again from its expiry and the clock: the same maxAge, one ms less.
      for (const [s, key] of [[a, 'ka'], [b, 'kb']] as const) {
        s.cookie.originalMaxAge = 86_399_999;
        s[key] = key;
      }
      await Promise.all([ls.set('w', a as unknown as SessionData), ls.set('w', b as unknown as SessionData)]);
      const got = (await ls.get('w')) as unknown as Record<string, unknown>;
      expect([got.ka, got.kb]).toEqual(['ka', 'kb']);
    });

    it('promises when no callback is given', async () => {
      const { ls } = setup();
      await ls.set('p1', sess({ n: 1 }));
      expect(await ls.get('p1')).toMatchObject({ n: 1 });
      expect(await ls.length()).toBe(1);
      await ls.destroy('p1');
      expect(await ls.get('p1')).toBeNull();
    });

    it('an expiry in the past removes the session; maxAge is the idle window', async () => {
      const { ls, store, clock } = setup();
      await ls.set('live', sess({}, 60_000));
      const past = sess({}, 60_000) as unknown as { cookie: { expires: Date } };
      past.cookie.expires = new Date(Date.now() - 1000);
      await ls.set('live', past as unknown as SessionData);
      expect(await ls.get('live')).toBeNull();
      await ls.set('idle', sess({}, 60_000));
      await clock.advance('61s');
      expect(await ls.get('idle')).toBeNull();
      expect(await store.size()).toBe(0);
    });

    it('a cookie without maxAge falls back to the Lapse store idleTimeout', async () => {
      const { ls, store } = setup();
      await ls.set('n', { cookie: { originalMaxAge: null, expires: null, path: '/' } } as unknown as SessionData);
      const s = await store.get('n');
      expect((s?.expiresAt ?? 0) - (s?.lastAccessedAt ?? 0)).toBe(30 * 60_000);
    });

    it('touch extends the expiry and never rewrites data', async () => {
      const { ls, store, clock } = setup();
      await ls.set('t', sess({ keep: 'me' }, 60_000));
      const before = await store.get('t');
      await clock.advance('50s');
      await once((cb) => ls.touch('t', sess({ keep: 'CHANGED' }, 60_000), cb));
      const after = await store.get('t');
      expect(after?.version).toBe(before?.version);
      expect((after?.data as { keep?: string } | undefined)?.keep).toBe('me');
      expect(after?.expiresAt).toBe((before?.expiresAt ?? 0) + 50_000);
      await clock.advance('50s');
      expect(await ls.get('t')).toMatchObject({ keep: 'me' });
      // Touching a session that is gone is not an error.
      await expect(ls.touch('gone', sess())).resolves.toBeUndefined();
    });

    it('length, ids, all, destroy and clear over 1,000 sessions', async () => {
      const { ls } = setup();
      const ids = Array.from({ length: 1000 }, (_, i) => `sess-${String(i).padStart(4, '0')}`);
      for (let i = 0; i < ids.length; i += 100) {
        await Promise.all(ids.slice(i, i + 100).map((id, j) => ls.set(id, sess({ n: i + j }))));
      }
      expect(await once((cb) => ls.length(cb))).toBe(1000);
      expect(await once<string[]>((cb) => ls.ids(cb))).toEqual(ids);
      const all = (await once<Record<string, SessionData>>((cb) => ls.all(cb))) as unknown as Record<string, { n: number }>;
      expect(Object.keys(all)).toHaveLength(1000);
      expect(all['sess-0999']?.n).toBe(999);
      await once((cb) => ls.destroy('sess-0000', cb));
      expect(await ls.get('sess-0000')).toBeNull();
      expect(await ls.length()).toBe(999);
      await once((cb) => ls.clear(cb));
      expect(await ls.length()).toBe(0);
      expect(await ls.ids()).toEqual([]);
    });

    it('express-session ids (32 characters) and odd but valid ids work; an invalid one is no session', async () => {
      const { ls } = setup();
      const sid = 'Q7qLJ4_i3u1xGX4sh_c9S5xbzT7V6O6B';
      await ls.set(sid, sess({ a: 1 }));
      expect(await ls.get(sid)).toMatchObject({ a: 1 });
      expect(await ls.get('')).toBeNull();
      await expect(ls.set('with space', sess())).rejects.toSatisfy((e) => isLapseError(e, 'LAPSE_INVALID_INPUT'));
    });

    it('a userId callback that changes the session it is given changes what is stored, and what is read back equals it', async () => {
      const clock = new ManualClock(Date.now());
      const backend = make(clock);
      const store = createStore({ backend, clock, sweepInterval: false, logger: silentLogger });
      closers.push(() => store.close());
      const ls = new LapseStore({
        store,
        userId: (s) => {
          const bag = s as unknown as Record<string, unknown>;
          bag.stamped = true; // an app's own bookkeeping, done in the mapping
          delete bag.scratch;
          return bag.uid as string;
        },
      });
      const sid = 'mut_Q7qLJ4_i3u1xGX4sh_c9S5xbzT';
      await ls.set(sid, sess({ uid: 'u1', scratch: 'x' }));
      const stored = await backend.get(sid, clock.now());
      const read = await store.get(sid);
      // One text, one value: the parsed data the store keeps is the text it wrote.
      expect(read?.data).toEqual(JSON.parse(stored?.data as string));
      expect(read?.data).toMatchObject({ uid: 'u1', stamped: true });
      expect(read?.data).not.toHaveProperty('scratch');
      expect(read?.userId).toBe('u1');
      expect(await ls.get(sid)).toMatchObject({ uid: 'u1', stamped: true });
    });

    it('userId moves the session to its user, also when it changes on an existing session', async () => {
      const { store } = setup();
      const ls = new LapseStore({ store, userId: (s) => (s as { uid?: number }).uid });
      await ls.set('u', sess({}));
      expect((await store.get('u'))?.userId).toBeNull();
      const read = (await ls.get('u')) as unknown as Record<string, unknown>;
      read.uid = 42; // a login on the same session id
      await ls.set('u', read as unknown as SessionData);
      expect((await store.get('u'))?.userId).toBe('42');
      expect((await store.listUser('42')).map((s) => s.id)).toEqual(['u']);
    });
  });
}

describe('LapseStore merge rule and errors', () => {
  it('applies only what a request changed: added, changed and deleted keys; the rest stays current', () => {
    const base = { cookie: { path: '/' }, a: 1, b: 2, c: 3 };
    const current = { cookie: { path: '/' }, a: 1, b: 20, c: 3, d: 4 }; // another request changed b, added d
    const next = { cookie: { path: '/x' }, a: 10, b: 2, e: 5 }; // this one changed a, deleted c, added e
    expect(applyChanges(current, base, next)).toEqual({ cookie: { path: '/x' }, a: 10, b: 20, d: 4, e: 5 });
  });

  it('a backend failure goes to the callback as LAPSE_BACKEND_UNAVAILABLE, once', async () => {
    const { backend, breakIt } = flakyBackend(['get', 'insert']);
    breakIt();
    const store = createStore({ backend, sweepInterval: false, logger: silentLogger });
    closers.push(() => store.close());
    const ls = new LapseStore({ store });
    await expect(once((cb) => ls.get('abc', cb))).rejects.toSatisfy((e) => isLapseError(e, 'LAPSE_BACKEND_UNAVAILABLE'));
    await expect(once((cb) => ls.set('abc', sess(), cb))).rejects.toSatisfy((e) => isLapseError(e, 'LAPSE_BACKEND_UNAVAILABLE'));
    await expect(ls.get('abc')).rejects.toSatisfy((e) => isLapseError(e, 'LAPSE_BACKEND_UNAVAILABLE'));
  });

  it('a save encodes once yet keeps the store checks: size cap and depth on first save and on update; the data reads back', async () => {
    const store = createStore({ sweepInterval: false, logger: silentLogger, maxDataBytes: 2_000 });
    closers.push(() => store.close());
    const ls = new LapseStore({ store });
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 70; i++) deep = { d: deep };
    await expect(ls.set('big', sess({ blob: 'x'.repeat(3_000) }))).rejects.toSatisfy((e) => isLapseError(e, 'LAPSE_PAYLOAD_TOO_LARGE'));
    await expect(ls.set('deep', sess({ deep }))).rejects.toSatisfy((e) => isLapseError(e, 'LAPSE_INVALID_INPUT'));
    expect(await store.get('big')).toBeNull();
    await ls.set('s1', sess({ a: 1, when: new Date(0) }));
    const read = (await ls.get('s1')) as unknown as Record<string, unknown>;
    expect(read.when).toBe('1970-01-01T00:00:00.000Z');
    // The versioned write of what this read changed: checked the same way, and nothing is written on a failure.
    read.blob = 'x'.repeat(3_000);
    await expect(ls.set('s1', read as never)).rejects.toSatisfy((e) => isLapseError(e, 'LAPSE_PAYLOAD_TOO_LARGE'));
    const read2 = (await ls.get('s1')) as unknown as Record<string, unknown>;
    read2.a = 2;
    await ls.set('s1', read2 as never);
    expect((await store.get('s1'))?.data).toMatchObject({ a: 2, when: '1970-01-01T00:00:00.000Z' });
    expect(Object.isFrozen((await store.get('s1'))?.data)).toBe(true);
    expect(await ls.get('s1')).toMatchObject({ a: 2 });
  });

  it('rejects a missing store and a userId that is not a function', () => {
    expect(() => new LapseStore({} as never)).toThrow(/LapseStore needs/);
    const store = createStore({ sweepInterval: false, logger: silentLogger });
    closers.push(() => store.close());
    expect(() => new LapseStore({ store, userId: 'passport.user' as never })).toThrow(/userId must be a function/);
  });
});
