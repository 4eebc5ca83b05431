import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from 'lapse/internal';
import { createServer, type LapseServer } from '../src/server/index.js';
import { tempDir } from '../../../test/helpers/tmp.js';

let app: LapseServer;
let clock: ManualClock;
let admin: Record<string, string>;
let appKey: Record<string, string>;
let cleanup: () => void;

/** A fresh server per test on `backend` ('memory', or 'sqlite' on a file in a temp folder). */
function useServer(backend: 'memory' | 'sqlite'): void {
  beforeEach(async () => {
    const tmp = tempDir('lapse-routes-');
    cleanup = tmp.cleanup;
    clock = new ManualClock(1_700_000_000_000);
    const url = backend === 'memory' ? 'memory' : `sqlite:${join(tmp.dir, 'lapse.db')}`;
    app = await createServer({ backend: url, dataDir: tmp.dir, logLevel: 'silent', clock, sweepInterval: 'off' });
    admin = { authorization: `Bearer ${app.lapse.generatedAdminKey}` };
    appKey = { authorization: `Bearer ${app.lapse.keys.create('web').key}` };
  });
  afterEach(async () => {
    await app.close();
    cleanup();
  });
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
async function call(method: Method, url: string, headers: Record<string, string>, payload?: unknown) {
  const res = await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) });
  const body = res.body === '' ? null : res.headers['content-type']?.toString().includes('json') ? res.json() : res.body;
  return { status: res.statusCode, body, headers: res.headers };
}

async function create(data: unknown = { role: 'user' }, userId = 'alice') {
  const r = await call('POST', '/v1/sessions', appKey, { userId, data });
  expect(r.status).toBe(201);
  return r.body as { token: string; session: { id: string; version: number } };
}

describe.each(['memory', 'sqlite'] as const)('on %s', (backend) => {
  useServer(backend);

  describe('sessions (app key)', () => {
    it('creates: 201 with a token and the session; an empty body is allowed', async () => {
      const r = await call('POST', '/v1/sessions', appKey, { userId: 'alice', data: { cart: [1] }, idleTimeout: '5m' });
      expect(r.status).toBe(201);
      expect(r.body.token).toMatch(/^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
      expect(r.body.session).toMatchObject({ userId: 'alice', data: { cart: [1] }, status: 'active', version: 1 });
      expect(r.body.session.expiresAt - r.body.session.createdAt).toBe(300_000);
      expect((await call('POST', '/v1/sessions', appKey)).status).toBe(201);
    });

    it('refuses bad create input with 400 LAPSE_INVALID_INPUT', async () => {
      for (const payload of [{ userId: 5 }, { nope: true }, { idleTimeout: 'soon' }, { userId: '' }, [1, 2]]) {
        const r = await call('POST', '/v1/sessions', appKey, payload);
        expect(r.status, JSON.stringify(payload)).toBe(400);
        expect(r.body.error.code).toBe('LAPSE_INVALID_INPUT');
      }
    });

    it('answers 413 for data over the store limit and bodies over the body limit', async () => {
      const big = await call('POST', '/v1/sessions', appKey, { data: 'x'.repeat(300 * 1024) });
      expect(big.status).toBe(413);
      expect(big.body.error.code).toBe('LAPSE_PAYLOAD_TOO_LARGE');
      const huge = await call('POST', '/v1/sessions', appKey, { data: 'x'.repeat(1100 * 1024) });
      expect(huge.status).toBe(413);
      expect(huge.body.error.code).toBe('LAPSE_PAYLOAD_TOO_LARGE');
    });

    it('validates: 200 with the session, counting the access', async () => {
      const { token } = await create();
      const r = await call('POST', '/v1/sessions/validate', appKey, { token });
      expect(r.status).toBe(200);
      expect(r.body.session).toMatchObject({ userId: 'alice', accessCount: 1 });
    });

    it('answers every kind of bad token with the same 401 (no oracle)', async () => {
      const { token, session } = await create();
      const revoked = await create();
      await call('POST', '/v1/sessions/revoke', appKey, { token: revoked.token });
      const expiring = await create();
      const wrongSecret = `${session.id}.${'A'.repeat(43)}`;
      const unknown = `${'B'.repeat(22)}.${'C'.repeat(43)}`;
      await clock.advance('29m'); // `token` stays fresh below; `expiring` is not touched
      await call('POST', '/v1/sessions/validate', appKey, { token });
      await clock.advance('2m');
      const bodies = new Set<string>();
      for (const bad of ['', 'garbage', wrongSecret, unknown, revoked.token, expiring.token]) {
        const r = await call('POST', '/v1/sessions/validate', appKey, { token: bad });
        expect(r.status, bad).toBe(401);
        bodies.add(JSON.stringify(r.body));
      }
      expect([...bodies]).toEqual([JSON.stringify({ error: { code: 'LAPSE_UNAUTHORIZED', message: 'invalid or expired session token' } })]);
      expect((await call('POST', '/v1/sessions/validate', appKey, { token })).status).toBe(200);
    });

    it('refuses a validate body without a string token with 400', async () => {
      for (const payload of [{}, { token: 5 }, { token: 'x', extra: 1 }]) {
        const r = await call('POST', '/v1/sessions/validate', appKey, payload);
        expect(r.status, JSON.stringify(payload)).toBe(400);
      }
    });

    it('rotates: new token works, the old one is 401 at once; a bad token is 401', async () => {
      const { token, session } = await create({ n: 1 });
      const r = await call('POST', '/v1/sessions/rotate', appKey, { token });
      expect(r.status).toBe(200);
      expect(r.body.token).not.toBe(token);
      expect(r.body.session.id).not.toBe(session.id);
      expect(r.body.session.data).toEqual({ n: 1 });
      expect((await call('POST', '/v1/sessions/validate', appKey, { token })).status).toBe(401);
      expect((await call('POST', '/v1/sessions/validate', appKey, { token: r.body.token })).status).toBe(200);
      const bad = await call('POST', '/v1/sessions/rotate', appKey, { token });
      expect(bad.status).toBe(401);
      expect(bad.body.error.code).toBe('LAPSE_UNAUTHORIZED');
    });

    it('rotate of a leased session is 423', async () => {
      const { token, session } = await create();
      expect((await call('POST', `/v1/sessions/${session.id}/lock`, admin, {})).status).toBe(200);
      const r = await call('POST', '/v1/sessions/rotate', appKey, { token });
      expect(r.status).toBe(423);
      expect(r.body.error.code).toBe('LAPSE_LOCKED');
    });

    it('revokes by token: 204 whether or not the token was live', async () => {
      const { token } = await create();
      expect((await call('POST', '/v1/sessions/revoke', appKey, { token })).status).toBe(204);
      expect((await call('POST', '/v1/sessions/validate', appKey, { token })).status).toBe(401);
      expect((await call('POST', '/v1/sessions/revoke', appKey, { token })).status).toBe(204);
    });

    it('deletes by id: 204, then 404; a lease blocks it (423) unless its fence is given', async () => {
      const a = await create();
      expect((await call('DELETE', `/v1/sessions/${a.session.id}`, appKey)).status).toBe(204);
      const gone = await call('DELETE', `/v1/sessions/${a.session.id}`, appKey);
      expect(gone.status).toBe(404);
      expect(gone.body.error.code).toBe('LAPSE_NOT_FOUND');
      const b = await create();
      const lock = await call('POST', `/v1/sessions/${b.session.id}/lock`, admin, { ttl: '10s' });
      expect((await call('DELETE', `/v1/sessions/${b.session.id}`, appKey)).status).toBe(423);
      expect((await call('DELETE', `/v1/sessions/${b.session.id}?fence=${lock.body.fence}`, appKey)).status).toBe(204);
    });
  });

  describe('admin routes', () => {
    it('shows a session by id without counting an access; 404 when gone', async () => {
      const { session } = await create();
      const r = await call('GET', `/v1/sessions/${session.id}`, admin);
      expect(r.status).toBe(200);
      expect(r.body.session).toMatchObject({ id: session.id, accessCount: 0 });
      expect((await call('GET', '/v1/sessions/nope', admin)).status).toBe(404);
      // A caller-chosen id (Map-like set) of the longest allowed length is reachable.
      const long = 'k'.repeat(256);
      await app.lapse.store.set(long, { long: true });
      expect((await call('GET', `/v1/sessions/${long}`, admin)).body.session.data).toEqual({ long: true });
      expect((await call('GET', `/v1/sessions/${'k'.repeat(257)}`, admin)).status).toBe(400);
    });

    it('lists sessions a page at a time with a cursor', async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 5; i++) ids.add((await create({ i }, `u${i}`)).session.id);
      const seen: string[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 10; pages++) {
        const r = await call('GET', `/v1/sessions?limit=2${cursor ? `&cursor=${cursor}` : ''}`, admin);
        expect(r.status).toBe(200);
        seen.push(...r.body.sessions.map((s: { id: string }) => s.id));
        cursor = r.body.cursor;
        if (!cursor) break;
      }
      expect(new Set(seen)).toEqual(ids);
      expect(seen).toEqual([...seen].sort());
      expect((await call('GET', '/v1/sessions?limit=0', admin)).status).toBe(400);
      expect((await call('GET', '/v1/sessions?limit=abc', admin)).status).toBe(400);
    });

    it("GET /v1/stats answers every figure of the store's stats(), none dropped by the response schema", async () => {
      await create();
      const r = await call('GET', '/v1/stats', admin);
      expect(r.status).toBe(200);
      expect(Object.keys(r.body).sort()).toEqual(
        ['backendErrors', 'created', 'evicted', 'expired', 'locked', 'revoked', 'rotated', 'sessions', 'updateRetries', 'users', 'validations'],
      );
      expect(r.body.created).toBeGreaterThanOrEqual(1);
      expect(r.body.updateRetries).toBe(0);
    });

    it('patches data: 200, 409 on a stale version, 404 when gone, 423 under a lease, 400 without data', async () => {
      const { session } = await create({ n: 1 });
      const ok = await call('PATCH', `/v1/sessions/${session.id}`, admin, { data: { n: 2 }, expectedVersion: 1 });
      expect(ok.status).toBe(200);
      expect(ok.body.session).toMatchObject({ data: { n: 2 }, version: 2 });
      const stale = await call('PATCH', `/v1/sessions/${session.id}`, admin, { data: { n: 3 }, expectedVersion: 1 });
      expect(stale.status).toBe(409);
      expect(stale.body.error.code).toBe('LAPSE_VERSION_CONFLICT');
      expect((await call('PATCH', `/v1/sessions/${session.id}`, admin, {})).status).toBe(400);
      expect((await call('PATCH', '/v1/sessions/nope', admin, { data: 1 })).status).toBe(404);
      const lock = await call('POST', `/v1/sessions/${session.id}/lock`, admin, { owner: 'worker' });
      const locked = await call('PATCH', `/v1/sessions/${session.id}`, admin, { data: { n: 4 } });
      expect(locked.status).toBe(423);
      const held = await call('PATCH', `/v1/sessions/${session.id}`, admin, { data: { n: 4 }, fence: lock.body.fence });
      expect(held.status).toBe(200);
      expect(held.body.session.data).toEqual({ n: 4 });
    });

    it('locks: 200 with fence and expiresAt, 423 while held, release by fence 204 then 404', async () => {
      const { session } = await create();
      const url = `/v1/sessions/${session.id}/lock`;
      const first = await call('POST', url, admin, { owner: 'a', ttl: 5000 });
      expect(first.status).toBe(200);
      expect(first.body).toEqual({ fence: expect.any(Number), owner: 'a', expiresAt: clock.now() + 5000 });
      const second = await call('POST', url, admin, { owner: 'b' });
      expect(second.status).toBe(423);
      expect(second.body.error.code).toBe('LAPSE_LOCKED');
      expect((await call('DELETE', url, admin, {})).status).toBe(400);
      expect((await call('DELETE', url, admin, { fence: first.body.fence })).status).toBe(204);
      expect((await call('DELETE', url, admin, { fence: first.body.fence })).status).toBe(404);
      const again = await call('POST', url, admin, { owner: 'b' });
      expect(again.status).toBe(200);
      expect(again.body.fence).toBeGreaterThan(first.body.fence);
      expect((await call('POST', '/v1/sessions/nope/lock', admin, {})).status).toBe(404);
      expect((await call('POST', url, admin, { wait: '1h' })).status).toBe(400);
    });

    it("lists and revokes a user's sessions", async () => {
      const a = await create({}, 'bob');
      const b = await create({}, 'bob');
      await create({}, 'carol');
      const list = await call('GET', '/v1/users/bob/sessions', admin);
      expect(list.status).toBe(200);
      expect(list.body.sessions.map((s: { id: string }) => s.id).sort()).toEqual([a.session.id, b.session.id].sort());
      const r = await call('DELETE', `/v1/users/bob/sessions?except=${a.session.id}`, appKey);
      expect(r).toMatchObject({ status: 200, body: { revoked: 1 } });
      expect((await call('GET', '/v1/users/bob/sessions', admin)).body.sessions).toHaveLength(1);
      expect((await call('GET', '/v1/users/carol/sessions', admin)).body.sessions).toHaveLength(1);
    });

    it('lists jobs and runs one; an unknown job is 404', async () => {
      const tmp = tempDir('lapse-jobs-');
      const withJobs = await createServer({ backend: 'memory', dataDir: tmp.dir, logLevel: 'silent', sweepInterval: '1m' });
      const key = { authorization: `Bearer ${withJobs.lapse.generatedAdminKey}` };
      try {
        const list = await withJobs.inject({ method: 'GET', url: '/v1/jobs', headers: key });
        expect(list.json().jobs.map((j: { id: string }) => j.id)).toEqual(['session_cleanup']);
        const run = await withJobs.inject({ method: 'POST', url: '/v1/jobs/session_cleanup/run', headers: key });
        expect(run.statusCode).toBe(200);
        expect(run.json()).toMatchObject({ result: { deleted: 0 }, job: { id: 'session_cleanup', runs: 1 } });
        const missing = await withJobs.inject({ method: 'POST', url: '/v1/jobs/nope/run', headers: key });
        expect(missing.statusCode).toBe(404);
      } finally {
        await withJobs.close();
        tmp.cleanup();
      }
    });
  });

});

describe('auth', () => {
  useServer('memory');
  const adminRoutes: [Method, string][] = [
    ['GET', '/v1/sessions'],
    ['GET', '/v1/sessions/x'],
    ['PATCH', '/v1/sessions/x'],
    ['POST', '/v1/sessions/x/lock'],
    ['DELETE', '/v1/sessions/x/lock'],
    ['GET', '/v1/users/u/sessions'],
    ['GET', '/v1/jobs'],
    ['POST', '/v1/jobs/session_cleanup/run'],
  ];

  it('answers 401 without a key, with an unknown key and with a malformed header', async () => {
    const headerSets: Record<string, string>[] = [{}, { authorization: 'Bearer lapse_app_nope' }, { authorization: 'Basic abc' }, { authorization: 'Bearer' }];
    for (const headers of headerSets) {
      for (const [method, url] of [['POST', '/v1/sessions/validate'], ['GET', '/health/connections'], ['GET', '/metrics'], ...adminRoutes] as [Method, string][]) {
        const r = await call(method, url, headers, method === 'GET' ? undefined : {});
        expect(r.status, `${method} ${url}`).toBe(401);
        expect(r.body.error.code).toBe('LAPSE_UNAUTHORIZED');
      }
    }
  });

  it('answers 403 LAPSE_FORBIDDEN when an app key calls an admin route', async () => {
    for (const [method, url] of adminRoutes) {
      const r = await call(method, url, appKey, method === 'GET' ? undefined : {});
      expect(r.status, `${method} ${url}`).toBe(403);
      expect(r.body.error.code).toBe('LAPSE_FORBIDDEN');
    }
  });

  it('stops accepting a revoked key', async () => {
    const { key, record } = app.lapse.keys.create('temp');
    const headers = { authorization: `Bearer ${key}` };
    expect((await call('GET', '/metrics', headers)).status).toBe(200);
    expect((await call('GET', '/health', headers)).body).toMatchObject({ status: 'ok', backend: 'memory' });
    app.lapse.keys.revoke(record.id);
    expect((await call('GET', '/metrics', headers)).status).toBe(401);
    // /health stays public, but tells a revoked key no more than anyone else.
    expect((await call('GET', '/health', headers)).body).toEqual({ status: 'ok' });
  });

  it('serves the admin page without a key, and 404 for unknown routes', async () => {
    const page = await app.inject({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    const r = await call('GET', '/v2/nothing', {});
    expect(r).toMatchObject({ status: 404, body: { error: { code: 'LAPSE_NOT_FOUND' } } });
    // Only flat names under web/ with a known type: no way out of the folder.
    for (const url of ['/web/..%2Fpackage.json', '/web/%2E%2E%2Fpackage.json', '/web/nothing.js', '/web/keys.json', '/web/.env']) {
      const res = await app.inject({ method: 'GET', url });
      expect([400, 404], url).toContain(res.statusCode);
      expect(res.body, url).not.toContain('"name"');
    }
  });
});

describe('security defaults', () => {
  useServer('memory');
  it('sends security headers and no CORS headers unless configured', async () => {
    const r = await call('GET', '/health', admin);
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['x-frame-options']).toBe('DENY');
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers['content-security-policy']).toBe("default-src 'none'; frame-ancestors 'none'");
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
    // Errors carry them too, and session data is never cacheable.
    const bad = await call('POST', '/v1/sessions/validate', admin, { token: 'nope' });
    expect(bad.headers['cache-control']).toBe('no-store');
    // The admin page gets helmet's full browser set.
    const page = await app.inject({ method: 'GET', url: '/' });
    expect(page.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(page.headers['cross-origin-opener-policy']).toBe('same-origin');
    expect(String(page.headers['content-security-policy'])).toContain("script-src 'self'");
    const asset = await app.inject({ method: 'GET', url: '/web/app.js' });
    expect(asset.headers['cross-origin-resource-policy']).toBe('same-origin');
    const pre = await app.inject({ method: 'OPTIONS', url: '/v1/sessions', headers: { origin: 'https://a.example' } });
    expect(pre.statusCode).toBe(404);
  });

  it('allows configured CORS origins only', async () => {
    const tmp = tempDir('lapse-cors-');
    const cors = await createServer({ backend: 'memory', dataDir: tmp.dir, logLevel: 'silent', corsOrigins: 'https://a.example' });
    try {
      const pre = await cors.inject({ method: 'OPTIONS', url: '/v1/sessions/validate', headers: { origin: 'https://a.example', 'access-control-request-method': 'POST' } });
      expect(pre.statusCode).toBe(204);
      expect(pre.headers['access-control-allow-origin']).toBe('https://a.example');
      expect(pre.headers['access-control-allow-headers']).toContain('authorization');
      const other = await cors.inject({ method: 'OPTIONS', url: '/v1/sessions/validate', headers: { origin: 'https://evil.example' } });
      expect(other.headers['access-control-allow-origin']).toBeUndefined();
      const denied = await cors.inject({ method: 'GET', url: '/metrics', headers: { origin: 'https://a.example' } });
      expect(denied.statusCode).toBe(401);
      expect(denied.headers['access-control-allow-origin']).toBe('https://a.example');
    } finally {
      await cors.close();
      tmp.cleanup();
    }
  });

  it('limits failed token checks per address (429 instead of 401), never refusing a valid token', async () => {
    const tmp = tempDir('lapse-rl-');
    const c = new ManualClock(1_700_000_000_000);
    const limited = await createServer({ backend: 'memory', dataDir: tmp.dir, logLevel: 'silent', rateLimit: '3/1m', clock: c, sweepInterval: 'off' });
    const key = { authorization: `Bearer ${limited.lapse.generatedAdminKey}` };
    const post = (url: string, payload: object, remoteAddress = '10.0.0.1') =>
      limited.inject({ method: 'POST', url, headers: key, payload, remoteAddress });
    try {
      const { token } = (await post('/v1/sessions', {})).json();
      for (let i = 0; i < 2; i++) expect((await post('/v1/sessions/validate', { token: 'bad' })).statusCode).toBe(401);
      const blocked = await post('/v1/sessions/validate', { token: 'bad' });
      expect(blocked.statusCode).toBe(429);
      expect(blocked.json().error.code).toBe('LAPSE_RATE_LIMITED');
      expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
      expect((await post('/v1/sessions/validate', { token })).statusCode).toBe(200);
      expect((await post('/v1/sessions/rotate', { token: 'bad' })).statusCode).toBe(429);
      expect((await post('/v1/sessions/validate', { token: 'bad' }, '10.0.0.2')).statusCode).toBe(401);
      await c.advance('61s');
      expect((await post('/v1/sessions/validate', { token: 'bad' })).statusCode).toBe(401);
    } finally {
      await limited.close();
      tmp.cleanup();
    }
  });

  it('answers bad JSON with 400 without echoing the body', async () => {
    const secret = 'lapse_app_SECRET_SHOULD_NOT_ECHO';
    const r = await app.inject({
      method: 'POST',
      url: '/v1/sessions/validate',
      headers: { ...appKey, 'content-type': 'application/json' },
      payload: `{"token": "${secret}`,
    });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('LAPSE_INVALID_INPUT');
    expect(r.body).not.toContain('SECRET');
  });
});
