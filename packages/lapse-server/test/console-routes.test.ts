import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Backend } from 'lapse/internal';
import { memory } from 'lapse';
import { sqlite } from 'lapse/sqlite';
import { parseUserAgent } from '../src/server/console/devices.js';
import { quantile, SeriesRing } from '../src/server/console/series.js';
import { createServer, type LapseServer } from '../src/server/index.js';
import { systemClock } from 'lapse/internal';
import { tempDir } from '../../../test/helpers/tmp.js';

const ADMIN = `lapse_admin_${'r'.repeat(40)}`;
const admin = { authorization: `Bearer ${ADMIN}` };
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(backend = 'memory'): Promise<LapseServer> {
  const tmp = tempDir('lapse-console-routes-');
  const app = await createServer({ backend: backend === 'sqlite' ? `sqlite:${tmp.dir}/l.db` : backend, dataDir: tmp.dir, adminKey: ADMIN, logLevel: 'silent' });
  cleanups.push(() => tmp.cleanup(), () => app.close());
  await app.ready();
  return app;
}

describe('keys routes', () => {
  it('are admin-only: 401 without a key, 403 with an app key', async () => {
    const app = await start();
    const { key } = app.lapse.keys.create('shop');
    for (const [method, url] of [['GET', '/v1/keys'], ['POST', '/v1/keys'], ['DELETE', '/v1/keys/key_x']] as const) {
      expect((await app.inject({ method, url })).statusCode, `${method} ${url}`).toBe(401);
      expect((await app.inject({ method, url, headers: { authorization: `Bearer ${key}` }, payload: { name: 'x' } })).statusCode).toBe(403);
    }
  });

  it('create shows the key once, list never shows a key or a hash, revoke ends an app key and refuses an admin key', async () => {
    const app = await start();
    const made = await app.inject({ method: 'POST', url: '/v1/keys', headers: admin, payload: { name: 'web-shop' } });
    expect(made.statusCode).toBe(201);
    const { key, record } = made.json();
    expect(key).toMatch(/^lapse_app_/);
    expect(app.lapse.keys.verify(key)?.kind).toBe('app');
    expect((await app.inject({ method: 'POST', url: '/v1/keys', headers: admin, payload: { name: 'web-shop' } })).statusCode).toBe(400);
    expect((await app.inject({ method: 'POST', url: '/v1/keys', headers: admin, payload: { name: 'bad name!' } })).statusCode).toBe(400);

    const list = await app.inject({ method: 'GET', url: '/v1/keys', headers: admin });
    expect(list.statusCode).toBe(200);
    expect(list.body).not.toContain(key);
    expect(list.body).not.toContain('hash');
    expect(list.json().keys.map((k: { name: string }) => k.name)).toContain('web-shop');

    const adminRec = app.lapse.keys.create('ops', 'admin').record;
    const refused = await app.inject({ method: 'DELETE', url: `/v1/keys/${adminRec.id}`, headers: admin });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.code).toBe('LAPSE_FORBIDDEN');

    expect((await app.inject({ method: 'DELETE', url: `/v1/keys/${record.id}`, headers: admin })).statusCode).toBe(204);
    expect(app.lapse.keys.verify(key)).toBeNull();
    expect((await app.inject({ method: 'DELETE', url: `/v1/keys/${record.id}`, headers: admin })).statusCode).toBe(404);
  });
});

describe('Backend.scanUsers', () => {
  const backends: [string, () => Backend][] = [
    ['memory', () => memory()],
    ['sqlite', () => {
      const tmp = tempDir('lapse-scan-users-');
      cleanups.push(() => tmp.cleanup());
      return sqlite({ path: `${tmp.dir}/s.db` });
    }],
  ];
  for (const [name, make] of backends) {
    it(`${name}: users by prefix in id order, a page after a cursor, with their counts`, async () => {
      const b = make();
      cleanups.push(() => b.close());
      const now = Date.now();
      const users = ['al', 'alice', 'alina', 'bob', 'al-2', 'alz'];
      let n = 0;
      for (const u of users) {
        for (let i = 0; i < (u === 'alice' ? 3 : 1); i++) {
          const rec = { id: `s${n++}`, secretHash: 'h', userId: u, data: '{}', createdAt: now, lastAccessedAt: now, expiresAt: now + 60_000, absoluteExpiresAt: now + 60_000, idleTimeout: 60_000, accessCount: 0, version: 1, lock: null, ip: null, userAgent: null };
          await b.insert(rec as never, now, {});
        }
      }
      expect(await b.scanUsers?.('al', null, 10, now)).toEqual([
        { userId: 'al', sessions: 1 }, { userId: 'al-2', sessions: 1 }, { userId: 'alice', sessions: 3 }, { userId: 'alina', sessions: 1 }, { userId: 'alz', sessions: 1 },
      ]);
      expect((await b.scanUsers?.('al', null, 2, now))?.map((u) => u.userId)).toEqual(['al', 'al-2']);
      expect((await b.scanUsers?.('al', 'al-2', 2, now))?.map((u) => u.userId)).toEqual(['alice', 'alina']);
      expect((await b.scanUsers?.('ali', null, 10, now))?.map((u) => u.userId)).toEqual(['alice', 'alina']);
      expect(await b.scanUsers?.('zed', null, 10, now)).toEqual([]);
      expect((await b.scanUsers?.('', 'alz', 10, now))?.map((u) => u.userId)).toEqual(['bob']);
      await b.removeUser('alice', now);
      expect((await b.scanUsers?.('ali', null, 10, now))?.map((u) => u.userId)).toEqual(['alina']);
    });
  }
});

describe('console routes in /openapi.json', () => {
  /** Every route the console's route files register, read from their source: method and URL. */
  function consoleRoutesInSource(): [string, string][] {
    const found: [string, string][] = [];
    for (const file of ['console.ts', 'keys.ts']) {
      const text = readFileSync(new URL(`../src/server/routes/${file}`, import.meta.url), 'utf8');
      for (const m of text.matchAll(/app\.(get|post|put|patch|delete)(?:<[^(]*>)?\(\s*'([^']+)'/g)) found.push([m[1] as string, m[2] as string]);
    }
    return found;
  }

  it('documents every console and key route, admin-only, with its answers', async () => {
    const app = await start();
    const routes = consoleRoutesInSource();
    expect(routes.length).toBeGreaterThanOrEqual(12);
    const doc = (await app.inject({ url: '/openapi.json', headers: admin })).json();
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .filter(([p]) => p.startsWith('/v1/console') || p.startsWith('/v1/keys'))
      .flatMap(([p, m]) => Object.keys(m).map((k) => `${k} ${p}`))
      .sort();
    expect(documented).toEqual(routes.map(([m, u]) => `${m} ${u.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`).sort());
    for (const [method, url] of routes) {
      // The route is real: without a key it answers 401, not 404.
      const concrete = url.replace(/:([A-Za-z0-9_]+)/g, 'x');
      expect((await app.inject({ method: method.toUpperCase() as 'GET', url: concrete })).statusCode, `${method} ${url}`).toBe(401);
      const op = doc.paths[url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')][method];
      expect(op.summary, `${method} ${url}`).toEqual(expect.any(String));
      expect(op['x-lapse-role']).toBe('admin');
      expect(op.security).toEqual([{ bearer: [] }]);
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['400', '401', '403', '503']));
      const ok = op.responses['200'] ?? op.responses['201'] ?? op.responses['204'];
      expect(ok, `${method} ${url} documents its answer`).toBeDefined();
      if (!op.responses['204']) expect(Object.keys(ok.content ?? {}).length, `${method} ${url}`).toBe(1);
      for (const name of (url.match(/:([A-Za-z0-9_]+)/g) ?? []).map((p) => p.slice(1))) {
        expect(op.parameters, `${method} ${url}`).toContainEqual(expect.objectContaining({ name, in: 'path', required: true }));
      }
    }
    const events = doc.paths['/v1/console/events'].get;
    expect(Object.keys(events.responses['200'].content)).toEqual(['text/event-stream']);
    const users = doc.paths['/v1/console/users'].get;
    expect(users.parameters.map((p: { name: string }) => p.name)).toEqual(['prefix', 'cursor', 'limit']);
    expect(users.responses['200'].content['application/json'].schema.properties.users.items.properties).toHaveProperty('userId');
  });

  it('the documented answers are what the routes send: no field dropped by the serializer', async () => {
    const app = await start();
    const ua = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
    const { session } = await app.lapse.store.create({ userId: 'zoe', ip: '192.0.2.9', userAgent: ua });
    const get = async (url: string) => (await app.inject({ url, headers: admin })).json();
    const doc = await get('/openapi.json');
    const documented = (path: string) => Object.keys(doc.paths[path].get.responses['200'].content['application/json'].schema.properties).sort();
    const figures = await get('/v1/console/figures');
    expect(Object.keys(figures).sort()).toEqual(documented('/v1/console/figures'));
    expect(Object.keys(await get('/v1/console/connections')).sort()).toEqual(documented('/v1/console/connections'));
    expect(Object.keys(await get('/v1/console/series')).sort()).toEqual(documented('/v1/console/series'));
    expect(figures).toMatchObject({ sessions: 1, users: 1, backend: 'ok' });
    const device = (await get('/v1/console/users/zoe/devices')).devices[0];
    expect(device).toMatchObject({ id: session.id, userId: 'zoe', ip: '192.0.2.9', userAgent: ua, os: 'Linux', device: 'desktop', connections: 0 });
    expect(device.browser).toMatch(/^Chrome/);
    expect((await get(`/v1/console/sessions?prefix=${session.id}`)).sessions[0]).toEqual(expect.objectContaining({ id: session.id, status: 'active', lastAccessedAt: expect.any(Number) }));
    const jobs = (await get('/v1/console/jobs')).jobs;
    expect(jobs.find((j: { id: string }) => j.id === 'session_cleanup')).toMatchObject({ schedule: expect.any(String), node: expect.any(String), recent: [] });
  });
});

describe('console routes', () => {
  it('users and sessions by prefix, paged with cursors, on memory and SQLite', async () => {
    for (const backend of ['memory', 'sqlite']) {
      const app = await start(backend);
      const { store } = app.lapse;
      for (let i = 0; i < 7; i++) await store.create({ userId: `team-${i}` });
      await store.create({ userId: 'other' });
      const page1 = (await app.inject({ url: '/v1/console/users?prefix=team-&limit=3', headers: admin })).json();
      expect(page1.users.map((u: { userId: string }) => u.userId)).toEqual(['team-0', 'team-1', 'team-2']);
      expect(page1.cursor).toBe('team-2');
      const page3 = (await app.inject({ url: '/v1/console/users?prefix=team-&limit=3&cursor=team-5', headers: admin })).json();
      expect(page3).toMatchObject({ users: [{ userId: 'team-6', sessions: 1 }], cursor: null, exact: false });

      const ids = (await store.page({ limit: 100 })).sessions.map((s) => s.id);
      const target = ids[3] as string;
      const hit = (await app.inject({ url: `/v1/console/sessions?prefix=${encodeURIComponent(target.slice(0, 6))}`, headers: admin })).json();
      expect(hit.sessions.map((s: { id: string }) => s.id)).toEqual(ids.filter((id) => id.startsWith(target.slice(0, 6))));
      const first = (await app.inject({ url: '/v1/console/sessions?limit=5', headers: admin })).json();
      expect(first.sessions.map((s: { id: string }) => s.id)).toEqual(ids.slice(0, 5));
      const second = (await app.inject({ url: `/v1/console/sessions?limit=5&cursor=${encodeURIComponent(first.cursor)}`, headers: admin })).json();
      expect(second.sessions.map((s: { id: string }) => s.id)).toEqual(ids.slice(5, 8));
      expect(second.cursor).toBeNull();
      expect((await app.inject({ url: '/v1/console/sessions?limit=0', headers: admin })).statusCode).toBe(400);
      expect((await app.inject({ url: `/v1/console/users?prefix=${'x'.repeat(300)}`, headers: admin })).statusCode).toBe(400);
    }
  });

  it('devices parse the user agent; the console routes need the admin key', async () => {
    const app = await start();
    const ua = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
    await app.lapse.store.create({ userId: 'ivy', userAgent: ua, ip: '198.51.100.4' });
    const r = (await app.inject({ url: '/v1/console/users/ivy/devices', headers: admin })).json();
    expect(r.devices[0]).toMatchObject({ browser: 'Mobile Safari 17', os: 'iOS 17.5', device: 'mobile Apple iPhone', ip: '198.51.100.4', connections: 0 });
    expect(r.devices[0].data).toBeUndefined();
    const { key } = app.lapse.keys.create('shop');
    for (const url of ['/v1/console/figures', '/v1/console/series', '/v1/console/connections', '/v1/console/users', '/v1/console/sessions', '/v1/console/jobs', '/v1/console/events']) {
      expect((await app.inject({ url })).statusCode, url).toBe(401);
      expect((await app.inject({ url, headers: { authorization: `Bearer ${key}` } })).statusCode, url).toBe(403);
    }
    expect((await app.inject({ method: 'POST', url: '/v1/console/connections/nope/disconnect', headers: admin })).statusCode).toBe(404);
  });

  it('streams server-sent events with the key in a header: figures and the series first, then changes within a second', async () => {
    const app = await start();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    expect((await fetch(`${base}/v1/console/events`)).status).toBe(401);
    const ctrl = new AbortController();
    cleanups.push(() => ctrl.abort());
    const res = await fetch(`${base}/v1/console/events`, { headers: admin, signal: ctrl.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const until = async (needle: string) => {
      const deadline = Date.now() + 5000;
      while (!text.includes(needle) && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      return text.includes(needle);
    };
    expect(await until('event: series')).toBe(true);
    expect(text.indexOf('event: figures')).toBe(0);
    const created = Date.now();
    await app.lapse.store.create({ userId: 'zoe' });
    expect(await until('"userId":"zoe"')).toBe(true);
    expect(Date.now() - created).toBeLessThan(1000);
    expect(await until('"sessions":1')).toBe(true);
    // Closing the server ends the stream.
    await app.close();
    const deadline = Date.now() + 5000;
    let ended = false;
    while (!ended && Date.now() < deadline) ended = (await reader.read()).done;
    expect(ended).toBe(true);
  });
});

describe('console series', () => {
  it('quantiles interpolate inside buckets (ms)', () => {
    // 0.1 ms, 0.25, 0.5, 1, 2.5, ... buckets; 10 in the first, 10 in the second.
    const counts = [10, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    expect(quantile(counts, 0.5)).toBeCloseTo(0.1, 5);
    expect(quantile(counts, 0.99)).toBeCloseTo(0.247, 3);
    expect(quantile(new Array(12).fill(0), 0.5)).toBeNull();
  });

  it('keeps at most `capacity` points and computes per-minute rates from counter differences', async () => {
    let now = 1_000_000;
    const clock = { ...systemClock, now: () => now };
    let created = 0;
    const ring = new SeriesRing(clock, 10_000, 3, async () => ({
      sessions: created, connections: 0, created, expired: 0, evicted: 0, revoked: 0, validations: 0, backendErrors: 0, latency: new Array(12).fill(0),
    }), () => {});
    cleanups.push(() => ring.close());
    expect(await ring.sample()).toBeNull();
    for (let i = 1; i <= 5; i++) {
      now += 10_000;
      created += 5;
      expect((await ring.sample())?.created).toBe(30);
    }
    const points = ring.list();
    expect(points.map((p) => p.t)).toEqual([1_030_000, 1_040_000, 1_050_000]);
    expect(parseUserAgent(null)).toEqual({ browser: null, os: null, device: null });
  });
});
