import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { Backend } from '../src/core/backend.js';
import { memory } from '../src/backends/memory/memory.js';
import { lapse } from '../src/integrations/express.js';
import { lapsePlugin } from '../src/integrations/fastify.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore, type SessionStore } from '../src/core/store.js';

const closers: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

function cookieOf(res: Response): string {
  const raw = res.headers.getSetCookie().find((c) => c.startsWith('lapse_session='));
  return (raw ?? '').split(';')[0] as string;
}

/** Drives one app through login, an authenticated read, rotate, logout and a failing backend. */
async function scenario(base: string, store: SessionStore, breakBackend: () => void) {
  const anon = await fetch(`${base}/me`);
  expect(await anon.json()).toEqual({ anonymous: true });

  const login = await fetch(`${base}/login`, { method: 'POST' });
  expect(login.status).toBe(200);
  const setCookie = login.headers.getSetCookie().join('\n');
  expect(setCookie).toMatch(/lapse_session=[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}/);
  expect(setCookie).toContain('HttpOnly');
  expect(setCookie).toContain('SameSite=Lax');
  const cookie = cookieOf(login);

  const me = await fetch(`${base}/me`, { headers: { cookie } });
  expect(await me.json()).toMatchObject({ userId: 'alice', data: { plan: 'pro' } });

  const bearer = await fetch(`${base}/me`, { headers: { authorization: `Bearer ${cookie.split('=')[1]}` } });
  expect(await bearer.json()).toMatchObject({ userId: 'alice' });

  const rotated = await fetch(`${base}/rotate`, { method: 'POST', headers: { cookie } });
  const cookie2 = cookieOf(rotated);
  expect(cookie2).not.toBe(cookie);
  expect(await (await fetch(`${base}/me`, { headers: { cookie } })).json()).toEqual({ anonymous: true });
  expect(await (await fetch(`${base}/me`, { headers: { cookie: cookie2 } })).json()).toMatchObject({ userId: 'alice' });

  const out = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie: cookie2 } });
  expect(out.headers.getSetCookie().join('\n')).toMatch(/lapse_session=;.*Max-Age=0/);
  expect(await (await fetch(`${base}/me`, { headers: { cookie: cookie2 } })).json()).toEqual({ anonymous: true });
  expect(await store.size()).toBe(0);

  // A failing backend is an error (503), never "anonymous".
  const again = cookieOf(await fetch(`${base}/login`, { method: 'POST' }));
  breakBackend();
  const failing = await fetch(`${base}/me`, { headers: { cookie: again } });
  expect(failing.status).toBe(503);
}

function flakyStore() {
  const backend = memory();
  let broken = false;
  const proxy = new Proxy(backend, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (prop === 'get' && broken) return () => Promise.reject(new Error('ECONNRESET'));
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as Backend;
  const store = createStore({ backend: proxy, sweepInterval: false, logger: silentLogger });
  return { store, breakIt: () => { broken = true; } };
}

describe('lapse/express', () => {
  it('logs in, reads, rotates, logs out over real HTTP; a backend failure is a 503', async () => {
    const { store, breakIt } = flakyStore();
    const app = express();
    app.use(lapse({ store }));
    app.get('/me', (req, res) => { res.json(req.lapse.session ?? { anonymous: true }); });
    app.post('/login', async (req, res) => {
      await req.lapse.login({ userId: 'alice', data: { plan: 'pro' } });
      res.json({ ok: true });
    });
    app.post('/rotate', async (req, res) => { await req.lapse.rotate(); res.json({ ok: true }); });
    app.post('/logout', async (req, res) => { await req.lapse.logout(); res.json({ ok: true }); });
    app.use((err: Error & { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(err.status ?? 500).json({ error: (err as { code?: string }).code });
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    closers.push(() => store.close(), () => new Promise((r) => server.close(r)));
    await scenario(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, store, breakIt);
  });
});

describe('lapse/fastify', () => {
  it('logs in, reads, rotates, logs out over real HTTP; a backend failure is a 503', async () => {
    const { store, breakIt } = flakyStore();
    const app = Fastify();
    await app.register(lapsePlugin, { store });
    app.get('/me', async (req) => req.lapse.session ?? { anonymous: true });
    app.post('/login', async (req) => {
      await req.lapse.login({ userId: 'alice', data: { plan: 'pro' } });
      return { ok: true };
    });
    app.post('/rotate', async (req) => { await req.lapse.rotate(); return { ok: true }; });
    app.post('/logout', async (req) => { await req.lapse.logout(); return { ok: true }; });
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    closers.push(() => app.close());
    await scenario(address, store, breakIt);
    expect(store.closed).toBe(false);
    await app.close();
    expect(store.closed).toBe(true);
  });
});
