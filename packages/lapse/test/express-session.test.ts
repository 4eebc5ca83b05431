/**
 * LapseStore under express-session and @fastify/session, over real HTTP, on memory, SQLite
 * and a real redis-server. Time is a ManualClock on the Lapse side: no sleeps.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Backend } from '../src/core/backend.js';
import { ManualClock } from '../src/core/clock.js';
import { LapseStore } from '../src/integrations/express-session.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore, type SessionStore } from '../src/core/store.js';
import { flakyBackend } from '../../../test/helpers/flaky-backend.js';
import { type BackendKind, sessionBackends } from '../../../test/helpers/session-backends.js';
import { expressSessionApp, fastifySessionApp, type RunningApp, sessionCookie, sidOf } from '../../../test/helpers/session-apps.js';

const closers: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const backends = sessionBackends(closers);
const kinds = Object.keys(backends) as BackendKind[];

interface Rig {
  app: RunningApp;
  store: SessionStore;
  clock: ManualClock;
  cookieName: string;
}

const frameworks = {
  'express-session': { start: expressSessionApp, cookieName: 'connect.sid' },
  '@fastify/session': { start: fastifySessionApp, cookieName: 'sessionId' },
} as const;

async function rig(framework: keyof typeof frameworks, kind: BackendKind, opts: { maxAge?: number; absoluteTimeout?: string } = {}): Promise<Rig> {
  const clock = new ManualClock(Date.now());
  const store = createStore({
    backend: (backends[kind] as (c: ManualClock) => Backend)(clock),
    clock,
    sweepInterval: false,
    logger: silentLogger,
    absoluteTimeout: opts.absoluteTimeout ?? '12h',
    idleTimeout: '30m',
  });
  const lapseStore = new LapseStore({ store, userId: (s) => (s.passport as { user?: string } | undefined)?.user });
  const f = frameworks[framework];
  const app = await f.start(lapseStore, opts.maxAge);
  closers.push(() => store.close(), () => app.close());
  return { app, store, clock, cookieName: f.cookieName };
}

async function login(r: Rig, user = 'alice', sent = ''): Promise<string> {
  const res = await fetch(`${r.app.url}/login?user=${user}`, { method: 'POST', headers: { cookie: sent } });
  expect(res.status).toBe(200);
  await res.text();
  const cookie = sessionCookie(res, r.cookieName);
  expect(cookie).not.toBe('');
  return cookie;
}

async function me(r: Rig, cookie: string): Promise<{ user: string | null; data: Record<string, unknown>; expiresIsDate: boolean }> {
  const res = await fetch(`${r.app.url}/me`, { headers: { cookie } });
  expect(res.status).toBe(200);
  return (await res.json()) as { user: string | null; data: Record<string, unknown>; expiresIsDate: boolean };
}

/** A POST whose body is read to the end: express-session finishes its save before the last byte. */
async function post(r: Rig, path: string, cookie: string): Promise<number> {
  const res = await fetch(`${r.app.url}${path}`, { method: 'POST', headers: { cookie } });
  await res.text();
  return res.status;
}

for (const framework of Object.keys(frameworks) as Array<keyof typeof frameworks>) {
  for (const kind of kinds) {
    describe(`${framework} + LapseStore on ${kind}`, () => {
      it('logs in, reads, writes, deletes a key, regenerates and destroys; the user is tracked', async () => {
        const r = await rig(framework, kind);
        const cookie = await login(r);
        const sid = sidOf(cookie);
        expect(sid).toHaveLength(32); // the framework's own id, kept as the Lapse id
        expect((await r.store.get(sid))?.userId).toBe('alice');
        expect((await r.store.listUser('alice')).map((s) => s.id)).toEqual([sid]);

        const first = await me(r, cookie);
        expect(first.user).toBe('alice');
        expect(first.expiresIsDate).toBe(true); // cookie dates come back as Dates

        expect(await post(r, '/set?k=cart&v=3', cookie)).toBe(200);
        expect((await me(r, cookie)).data.cart).toBe('3');
        expect(await post(r, '/del?k=cart', cookie)).toBe(200);
        expect((await me(r, cookie)).data).not.toHaveProperty('cart');

        // A second login regenerates: new id, the old one is gone, the user moves with it.
        const again = await login(r, 'bob', cookie);
        expect(sidOf(again)).not.toBe(sid);
        expect(await r.store.get(sid)).toBeNull();
        expect((await r.store.listUser('bob')).length).toBe(1);

        expect(await post(r, '/logout', again)).toBe(200);
        expect((await me(r, again)).user).toBeNull();
        expect(await r.store.size()).toBe(0);
      });

      it('50 concurrent requests each setting a different key of one session keep all 50', async () => {
        const r = await rig(framework, kind);
        const cookie = await login(r);
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => post(r, `/set?k=k${i}&v=${i}`, cookie)));
        expect(results).toEqual(Array(50).fill(200));
        expect(r.app.errors).toEqual([]); // a save that failed after the response began shows here
        const data = (await r.store.get(sidOf(cookie)))?.data as Record<string, unknown>;
        for (let i = 0; i < 50; i++) expect(data[`k${i}`]).toBe(String(i));
        expect((data.passport as { user: string }).user).toBe('alice');
      });

      it('honours the cookie maxAge as the idle window, and touch extends it without rewriting data', async () => {
        const r = await rig(framework, kind, { maxAge: 60_000 });
        const cookie = await login(r);
        const sid = sidOf(cookie);
        const before = await r.store.get(sid);
        // express-session computes a new cookie's originalMaxAge as its expiry minus Date.now(), read
        // a moment after it set that expiry: 59,999 when the millisecond ticks in between (seen in CI).
        const window = (before?.expiresAt ?? 0) - (before?.lastAccessedAt ?? 0);
        expect(window).toBeGreaterThanOrEqual(60_000 - 2);
        expect(window).toBeLessThanOrEqual(60_000);
        await r.clock.advance('50s');
        expect((await me(r, cookie)).user).toBe('alice');
        const after = await r.store.get(sid);
        const { cookie: _a, ...dataAfter } = (after?.data ?? {}) as Record<string, unknown>;
        const { cookie: _b, ...dataBefore } = (before?.data ?? {}) as Record<string, unknown>;
        expect(dataAfter).toEqual(dataBefore);
        // express-session touches a session it did not change: no write at all. @fastify/session
        // (rolling by default) saves it again, with a new cookie expiry and nothing else.
        if (framework === 'express-session') expect(after?.version).toBe(before?.version);
        expect(after?.expiresAt).toBeGreaterThan(before?.expiresAt ?? Infinity);
        await r.clock.advance('50s'); // 100 s after login, 50 s after the last request: alive
        expect((await me(r, cookie)).user).toBe('alice');
        await r.clock.advance('61s');
        expect((await me(r, cookie)).user).toBeNull();
      });

      it('caps an active session at the Lapse store absoluteTimeout', async () => {
        const r = await rig(framework, kind, { absoluteTimeout: '1h' });
        const cookie = await login(r);
        for (let i = 0; i < 3; i++) {
          await r.clock.advance('19m');
          expect((await me(r, cookie)).user).toBe('alice');
        }
        await r.clock.advance('4m'); // 61 minutes after login, 4 after the last request
        expect((await me(r, cookie)).user).toBeNull();
      });

      it('revokeUser on the Lapse store logs the user out of the app', async () => {
        const r = await rig(framework, kind);
        const phone = await login(r, 'carol');
        const laptop = await login(r, 'carol');
        const other = await login(r, 'dave');
        expect((await r.store.listUser('carol')).length).toBe(2);
        expect(await r.store.revokeUser('carol')).toBe(2);
        expect((await me(r, phone)).user).toBeNull();
        expect((await me(r, laptop)).user).toBeNull();
        expect((await me(r, other)).user).toBe('dave');
      });
    });
  }
}

describe('LapseStore failure paths', () => {
  it('a failing backend is an error response, never a fresh anonymous session', async () => {
    const { backend, breakIt } = flakyBackend();
    const store = createStore({ backend, sweepInterval: false, logger: silentLogger });
    const app = await expressSessionApp(new LapseStore({ store }));
    closers.push(() => app.close());
    const res = await fetch(`${app.url}/login`, { method: 'POST' });
    const cookie = sessionCookie(res, 'connect.sid');
    breakIt();
    const failing = await fetch(`${app.url}/me`, { headers: { cookie } });
    expect(failing.status).toBe(500);
    expect(await failing.json()).toEqual({ error: 'LAPSE_BACKEND_UNAVAILABLE' });
    expect(failing.headers.getSetCookie()).toEqual([]);
  });

  it('a session revoked while a request is in flight stays revoked when that request saves', async () => {
    const store = createStore({ sweepInterval: false, logger: silentLogger });
    const ls = new LapseStore({ store });
    const cookie = { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000).toISOString(), path: '/' };
    await ls.set('s1', { cookie, n: 1 } as never);
    const read = (await ls.get('s1')) as unknown as Record<string, unknown>;
    await store.delete('s1');
    read.n = 2;
    await ls.set('s1', read as never);
    expect(await store.get('s1')).toBeNull();
  });
});
