import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { lapse } from '../src/integrations/hono.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore } from '../src/core/store.js';
import { flakyBackend } from '../../../test/helpers/flaky-backend.js';

const closers: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

function cookieOf(res: Response): string {
  return ((res.headers.getSetCookie().find((c) => c.startsWith('lapse_session=')) ?? '').split(';')[0]) as string;
}

describe('lapse/hono on @hono/node-server', () => {
  it('logs in, reads, updates, rotates, logs out over real HTTP; a backend failure is a 503', async () => {
    const { backend, breakIt } = flakyBackend(['get']);
    const store = createStore({ backend, sweepInterval: false, logger: silentLogger });
    const app = new Hono();
    app.use(lapse({ store }));
    app.get('/me', (c) => c.json(c.get('lapse').session ?? { anonymous: true }));
    app.get('/private', (c) => c.json({ user: c.get('lapse').require().userId }));
    app.get('/peek', async (c) => c.json({ found: (await store.get('a'.repeat(22))) !== null }));
    app.post('/login', async (c) => {
      await c.get('lapse').login({ userId: 'alice', data: { plan: 'pro' } });
      return c.json({ ok: true });
    });
    app.post('/plan', async (c) => {
      await c.get('lapse').update((prev: { plan: string }) => ({ ...prev, plan: 'team' }));
      return c.json({ ok: true });
    });
    app.post('/rotate', async (c) => {
      await c.get('lapse').rotate();
      return c.json({ ok: true });
    });
    app.post('/logout', async (c) => {
      await c.get('lapse').logout();
      return c.json({ ok: true });
    });
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise((r) => server.once('listening', r));
    closers.push(() => store.close(), () => new Promise((r) => server.close(r)));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    expect(await (await fetch(`${base}/me`)).json()).toEqual({ anonymous: true });
    // require() without a session is the LapseError's 401 through Hono's own error handler, not a 500.
    const anonymous = await fetch(`${base}/private`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).toBe('LAPSE_UNAUTHORIZED');
    const login = await fetch(`${base}/login`, { method: 'POST' });
    const set = login.headers.getSetCookie().join('\n');
    expect(set).toMatch(/lapse_session=[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}/);
    expect(set).toContain('HttpOnly');
    const cookie = cookieOf(login);
    expect(await (await fetch(`${base}/me`, { headers: { cookie } })).json()).toMatchObject({ userId: 'alice', data: { plan: 'pro' } });
    expect(await (await fetch(`${base}/private`, { headers: { cookie } })).json()).toEqual({ user: 'alice' });
    const bearer = await fetch(`${base}/me`, { headers: { authorization: `Bearer ${cookie.split('=')[1]}` } });
    expect(await bearer.json()).toMatchObject({ userId: 'alice' });

    await fetch(`${base}/plan`, { method: 'POST', headers: { cookie } });
    expect(await (await fetch(`${base}/me`, { headers: { cookie } })).json()).toMatchObject({ data: { plan: 'team' } });

    const cookie2 = cookieOf(await fetch(`${base}/rotate`, { method: 'POST', headers: { cookie } }));
    expect(cookie2).not.toBe(cookie);
    expect(await (await fetch(`${base}/me`, { headers: { cookie } })).json()).toEqual({ anonymous: true });

    const out = await fetch(`${base}/logout`, { method: 'POST', headers: { cookie: cookie2 } });
    expect(out.headers.getSetCookie().join('\n')).toMatch(/lapse_session=;.*Max-Age=0/);
    expect(await (await fetch(`${base}/me`, { headers: { cookie: cookie2 } })).json()).toEqual({ anonymous: true });
    expect(await store.size()).toBe(0);

    expect(await (await fetch(`${base}/peek`)).json()).toEqual({ found: false });
    const again = cookieOf(await fetch(`${base}/login`, { method: 'POST' }));
    breakIt();
    const failing = await fetch(`${base}/me`, { headers: { cookie: again } });
    expect(failing.status).toBe(503);
    expect(await failing.text()).toBe('LAPSE_BACKEND_UNAVAILABLE');
    // A store call in a handler on a failing backend: 503 too.
    const direct = await fetch(`${base}/peek`);
    expect(direct.status).toBe(503);
  });
});
