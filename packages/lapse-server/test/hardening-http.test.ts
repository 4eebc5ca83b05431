import { chmodSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend } from 'lapse/internal';
import { memory } from 'lapse/internal';
import { ManualClock } from 'lapse/internal';
import { MAX_DATA_DEPTH, encodeData } from 'lapse/internal';
import { MAX_DURATION_MS, MAX_LEASE_MS, parseDuration } from 'lapse/internal';
import { LapseError } from 'lapse/internal';
import { createServer, type LapseServer } from '../src/server/index.js';
import { FailureLimiter } from '../src/server/rate-limit.js';
import { createStore } from 'lapse/internal';
import { tempDir } from '../../../test/helpers/tmp.js';

/** `{"a":{"a":…1…}}`, `levels` objects deep, as text (building it as a value would itself need the stack). */
function nested(levels: number): string {
  return `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
}

let app: LapseServer;
let admin: Record<string, string>;
let appKey: Record<string, string>;
let clock: ManualClock;
let cleanup: () => void;

async function start(extra: Record<string, unknown> = {}) {
  const tmp = tempDir('lapse-harden-');
  cleanup = tmp.cleanup;
  clock = new ManualClock(1_700_000_000_000);
  app = await createServer({ backend: 'memory', dataDir: tmp.dir, logLevel: 'silent', clock, sweepInterval: 'off', liveConnections: false, ...extra });
  admin = { authorization: `Bearer ${app.lapse.generatedAdminKey}` };
  appKey = { authorization: `Bearer ${app.lapse.keys.create('web').key}` };
}

function stop() {
  return async () => {
    await app?.close();
    cleanup?.();
  };
}

const json = { 'content-type': 'application/json' };

describe('the service refuses what would hurt it', () => {
  beforeEach(() => start());
  afterEach(stop());

  it('answers deeply nested data with 400, on create and on update, and accepts data at the bound', async () => {
    const { session } = (await app.inject({ method: 'POST', url: '/v1/sessions', headers: appKey, payload: {} })).json();
    for (const levels of [MAX_DATA_DEPTH + 1, 2500, 100_000]) {
      const payload = `{"data":${nested(levels)}}`;
      const created = await app.inject({ method: 'POST', url: '/v1/sessions', headers: { ...appKey, ...json }, payload });
      expect(created.statusCode, `${levels} levels`).toBe(400);
      expect(created.json().error.code).toBe('LAPSE_INVALID_INPUT');
      const patched = await app.inject({ method: 'PATCH', url: `/v1/sessions/${session.id}`, headers: { ...admin, ...json }, payload });
      expect(patched.statusCode).toBe(400);
      expect(patched.json().error.message).toContain(`${MAX_DATA_DEPTH}`);
    }
    const ok = await app.inject({ method: 'POST', url: '/v1/sessions', headers: { ...appKey, ...json }, payload: `{"data":${nested(MAX_DATA_DEPTH)}}` });
    expect(ok.statusCode).toBe(201);
  });

  it('answers absurd durations and lease ttls with 400', async () => {
    const { session } = (await app.inject({ method: 'POST', url: '/v1/sessions', headers: appKey, payload: {} })).json();
    for (const body of [{ absoluteTimeout: 1e300 }, { idleTimeout: '99999999999999999999d' }, { absoluteTimeout: MAX_DURATION_MS + 1 }, { idleTimeout: '401d' }]) {
      const r = await app.inject({ method: 'POST', url: '/v1/sessions', headers: appKey, payload: body });
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect(r.json().error.code).toBe('LAPSE_INVALID_INPUT');
    }
    for (const ttl of ['2d', MAX_LEASE_MS + 1, 1e300]) {
      const r = await app.inject({ method: 'POST', url: `/v1/sessions/${session.id}/lock`, headers: admin, payload: { ttl } });
      expect(r.statusCode, String(ttl)).toBe(400);
    }
    const atBound = await app.inject({ method: 'POST', url: '/v1/sessions', headers: appKey, payload: { idleTimeout: '400d', absoluteTimeout: MAX_DURATION_MS } });
    expect(atBound.statusCode).toBe(201);
    expect(atBound.json().session.absoluteExpiresAt).toBe(clock.now() + MAX_DURATION_MS);
  });

  it('never echoes a path value that could be a token, on any route or error path', async () => {
    const { token } = (await app.inject({ method: 'POST', url: '/v1/sessions', headers: appKey, payload: {} })).json();
    const secret = token.split('.')[1] as string;
    const long = `${token}${'x'.repeat(300)}`;
    const tries: [string, string, unknown?][] = [];
    for (const v of [token, encodeURIComponent(token), long]) {
      tries.push(
        ['GET', `/v1/sessions/${v}`],
        ['DELETE', `/v1/sessions/${v}`],
        ['PATCH', `/v1/sessions/${v}`, { data: 1 }],
        ['PATCH', `/v1/sessions/${v}`, { data: 1, nope: 2 }],
        ['POST', `/v1/sessions/${v}/lock`, {}],
        ['DELETE', `/v1/sessions/${v}/lock`, { fence: 1 }],
        ['GET', `/v1/users/${v}/sessions`],
        ['DELETE', `/v1/users/${v}/sessions?except=${v}`],
        ['POST', `/v1/jobs/${v}/run`],
        ['GET', `/v1/sessions?cursor=${v}&limit=0`],
        ['GET', `/v1/${v}`],
        ['PUT', `/v1/sessions/${v}`],
      );
    }
    for (const [method, url, payload] of tries) {
      const r = await app.inject({ method: method as 'GET', url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
      expect(r.statusCode, `${method} ${url}`).toBeLessThan(500);
      expect(r.body, `${method} ${url}`).not.toContain(secret);
    }
  });

  it('reads a JSON content-type with an empty body as no body, on every route', async () => {
    const { session } = (await app.inject({ method: 'POST', url: '/v1/sessions', headers: appKey, payload: { userId: 'u' } })).json();
    const { session: other } = (await app.inject({ method: 'POST', url: '/v1/sessions', headers: appKey, payload: { userId: 'v' } })).json();
    const cases: [string, string, number][] = [
      ['DELETE', '/v1/users/u/sessions', 200],
      ['DELETE', `/v1/sessions/${other.id}`, 204],
      ['POST', '/v1/jobs/session_cleanup/run', 404],
      ['POST', '/v1/sessions', 201],
      ['GET', '/v1/sessions', 200],
      ['GET', '/v1/jobs', 200],
      ['POST', `/v1/sessions/${session.id}/lock`, 404],
    ];
    for (const [method, url, status] of cases) {
      const r = await app.inject({ method: method as 'GET', url, headers: { ...admin, 'content-type': 'application/json; charset=utf-8' }, payload: '' });
      expect(r.statusCode, `${method} ${url} ${r.body}`).toBe(status);
    }
    // A route that needs a body still says so, as a 400 about the body.
    const validate = await app.inject({ method: 'POST', url: '/v1/sessions/validate', headers: { ...appKey, ...json }, payload: '' });
    expect(validate.statusCode).toBe(400);
    expect(validate.json().error.code).toBe('LAPSE_INVALID_INPUT');
  });

  it('serves /health without a key, minimal; details only with a key', async () => {
    const open = await app.inject({ method: 'GET', url: '/health' });
    expect(open.statusCode).toBe(200);
    expect(open.json()).toEqual({ status: 'ok' });
    const badKey = await app.inject({ method: 'GET', url: '/health', headers: { authorization: 'Bearer nope' } });
    expect(badKey.statusCode).toBe(200);
    expect(badKey.json()).toEqual({ status: 'ok' });
    const detailed = await app.inject({ method: 'GET', url: '/health', headers: appKey });
    expect(detailed.json()).toMatchObject({ status: 'ok', backend: 'memory', reads: true, writes: true });
    expect(typeof detailed.json().uptimeMs).toBe('number');
  });

  it('has the Node default metrics on /metrics', async () => {
    const text = (await app.inject({ method: 'GET', url: '/metrics', headers: appKey })).body;
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^process_resident_memory_bytes /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes /m);
    expect(text).toMatch(/^lapse_sessions /m);
  });
});

describe('/health and writes', () => {
  afterEach(stop());

  it('answers 503 when the backend says it cannot keep writes, and 200 again when it can', async () => {
    let degraded: string | null = null;
    // The hook a backend implements to say its writes are not being kept (a memory snapshot that fails, say).
    const backend: Backend = Object.assign(memory(), { health: () => (degraded === null ? { ok: true } : { ok: false, reason: degraded }) });
    const store = createStore({ backend, sweepInterval: false });
    await start({ store });
    try {
      expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      degraded = 'snapshot folder is read-only';
      const down = await app.inject({ method: 'GET', url: '/health' });
      expect(down.statusCode).toBe(503);
      expect(down.json()).toEqual({ status: 'unavailable' });
      const detail = await app.inject({ method: 'GET', url: '/health', headers: admin });
      expect(detail.json()).toMatchObject({ status: 'unavailable', reads: true, writes: false });
      expect(detail.json().error.message).toContain('read-only');
      expect((await app.inject({ method: 'GET', url: '/metrics', headers: admin })).body).toMatch(/^lapse_backend_up 0$/m);
      degraded = null;
      expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/metrics', headers: admin })).body).toMatch(/^lapse_backend_up 1$/m);
    } finally {
      await store.close();
    }
  });
});

describe('files the service keeps', () => {
  afterEach(stop());

  it('creates the data folder 0700 and every file in it 0600', async () => {
    const parent = tempDir('lapse-modes-');
    const data = join(parent.dir, 'data');
    try {
      const server = await createServer({ dataDir: data, logLevel: 'silent', sweepInterval: 'off', liveConnections: false });
      await server.inject({ method: 'POST', url: '/v1/sessions', headers: { authorization: `Bearer ${server.lapse.generatedAdminKey}` }, payload: {} });
      const names = readdirSync(data);
      expect(names).toEqual(expect.arrayContaining(['keys.json', 'lapse.db', 'lapse.db-wal', 'lapse.db-shm']));
      expect(statSync(data).mode & 0o777).toBe(0o700);
      for (const name of names) expect(statSync(join(data, name)).mode & 0o777, name).toBe(0o600);
      await server.close();
    } finally {
      parent.cleanup();
    }
  });

  it('tightens a SQLite file elsewhere too, and its folder when it makes it', async () => {
    const parent = tempDir('lapse-modes-');
    try {
      mkdirSync(join(parent.dir, 'keys'));
      chmodSync(join(parent.dir, 'keys'), 0o700);
      const db = join(parent.dir, 'db', 'sessions.db');
      const server = await createServer({ dataDir: join(parent.dir, 'keys'), backend: `sqlite:${db}`, logLevel: 'silent', sweepInterval: 'off', liveConnections: false });
      await server.inject({ method: 'POST', url: '/v1/sessions', headers: { authorization: `Bearer ${server.lapse.generatedAdminKey}` }, payload: {} });
      expect(statSync(join(parent.dir, 'db')).mode & 0o777).toBe(0o700);
      for (const name of readdirSync(join(parent.dir, 'db'))) expect(statSync(join(parent.dir, 'db', name)).mode & 0o777, name).toBe(0o600);
      await server.close();
    } finally {
      parent.cleanup();
    }
  });
});

describe('failed-validation limit', () => {
  afterEach(stop());

  const post = (url: string, headers: Record<string, string>, payload: object, remoteAddress = '10.0.0.1') =>
    app.inject({ method: 'POST', url, headers, payload, remoteAddress });

  it('never refuses a valid token because of other requests from its address', async () => {
    await start({ rateLimit: '5/1m' });
    const a = (await post('/v1/sessions', appKey, {})).json().token as string;
    const b = (await post('/v1/sessions', appKey, {})).json().token as string;
    const [aId] = a.split('.');
    const wrongA = `${aId}.${'A'.repeat(43)}`;
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const bad = i % 2 === 0 ? wrongA : `${'Z'.repeat(21)}${String.fromCharCode(65 + (i % 26))}.${'B'.repeat(43)}`;
      statuses.push((await post('/v1/sessions/validate', appKey, { token: bad })).statusCode);
    }
    // Failures beyond the address's budget answer 429 instead of 401...
    expect(statuses.slice(0, 4).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(-5).every((s) => s === 429)).toBe(true);
    // ...but a valid token from another session, from the same address, is served.
    expect((await post('/v1/sessions/validate', appKey, { token: b })).statusCode).toBe(200);
    expect((await post('/v1/sessions/rotate', appKey, { token: b })).statusCode).toBe(200);
    // So is the very session whose secret was guessed, from that address: only failures are limited.
    expect((await post('/v1/sessions/validate', appKey, { token: a })).statusCode).toBe(200);
    // A further wrong guess for it says it is limited, and for how long.
    const limited = await post('/v1/sessions/validate', appKey, { token: wrongA });
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error.code).toBe('LAPSE_RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // The window passes: a wrong guess is a plain 401 again.
    await clock.advance('61s');
    expect((await post('/v1/sessions/validate', appKey, { token: wrongA })).statusCode).toBe(401);
  });

  it('limits wrong-secret revokes too', async () => {
    await start({ rateLimit: '3/1m' });
    const a = (await post('/v1/sessions', appKey, {})).json().token as string;
    const wrong = `${a.split('.')[0]}.${'A'.repeat(43)}`;
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await post('/v1/sessions/revoke', appKey, { token: wrong })).statusCode);
    expect(statuses[0]).toBe(204);
    expect(statuses.at(-1)).toBe(429);
    expect((await post('/v1/sessions/validate', appKey, { token: a }, '10.0.0.9')).statusCode).toBe(200);
  });

  it('takes the address from X-Forwarded-For only as far as trustProxy says', async () => {
    await start({ rateLimit: '3/1m', trustProxy: '10.0.0.0/8' });
    const a = (await post('/v1/sessions', appKey, {})).json().token as string;
    const wrong = `${a.split('.')[0]}.${'A'.repeat(43)}`;
    // The proxy appends the address it saw; whatever the client put before it is ignored.
    for (let i = 0; i < 30; i++) {
      await app.inject({ method: 'POST', url: '/v1/sessions/validate', headers: { ...appKey, 'x-forwarded-for': `192.0.2.${i}, 203.0.113.7` }, payload: { token: wrong }, remoteAddress: '10.0.0.1' });
    }
    const victim = await app.inject({ method: 'POST', url: '/v1/sessions/validate', headers: { ...appKey, 'x-forwarded-for': '203.0.113.8' }, payload: { token: wrong }, remoteAddress: '10.0.0.1' });
    expect(victim.statusCode).toBe(401);
    const attacker = await app.inject({ method: 'POST', url: '/v1/sessions/validate', headers: { ...appKey, 'x-forwarded-for': '198.51.100.1, 203.0.113.7' }, payload: { token: wrong }, remoteAddress: '10.0.0.1' });
    expect(attacker.statusCode).toBe(429);
    // The attacker's own valid token is still served: only failures are limited.
    const valid = await app.inject({ method: 'POST', url: '/v1/sessions/validate', headers: { ...appKey, 'x-forwarded-for': '203.0.113.7' }, payload: { token: a }, remoteAddress: '10.0.0.1' });
    expect(valid.statusCode).toBe(200);
  });

  it('keeps its memory bounded and limits per pair and per address', () => {
    let now = 0;
    const limiter = new FailureLimiter({ max: 4, windowMs: 1000, pairMax: 2, maxEntries: 10 }, { now: () => now });
    expect(limiter.fail('a', 's1')).toBe(0);
    // The pair's 2nd failure: over the pair's budget.
    expect(limiter.fail('a', 's1')).toBe(1000);
    // Another address naming the same session has a budget of its own.
    expect(limiter.fail('b', 's1')).toBe(0);
    now = 400;
    // The address's 4th failure: over its budget, whatever the pair.
    expect(limiter.fail('a', 's2')).toBe(0);
    expect(limiter.fail('a', null)).toBe(600);
    for (let i = 0; i < 100; i++) limiter.fail(`x${i}`, `s${i}`);
    expect(limiter.size).toBeLessThanOrEqual(20);
    now = 1400;
    // A new window: the pair starts again.
    expect(limiter.fail('a', 's1')).toBe(0);
  });
});

describe('library bounds', () => {
  it('refuses durations past the bound as LAPSE_INVALID_OPTION, not a huge number', () => {
    expect(parseDuration('400d')).toBe(MAX_DURATION_MS);
    for (const v of ['401d', '99999999999999999999d', 1e300, MAX_DURATION_MS + 1]) {
      expect(() => parseDuration(v), String(v)).toThrow(expect.objectContaining({ code: 'LAPSE_INVALID_OPTION' }));
    }
    expect(() => createStore({ absoluteTimeout: '1000d' })).toThrow(expect.objectContaining({ code: 'LAPSE_INVALID_OPTION' }));
    expect(() => createStore({ lockTimeout: '2d' })).toThrow(expect.objectContaining({ code: 'LAPSE_INVALID_OPTION' }));
  });

  it('refuses a lease ttl past the bound, on lock and on extend', async () => {
    const store = createStore({ sweepInterval: false });
    try {
      const { session } = await store.create({});
      await expect(store.lock(session.id, { ttl: '25h' })).rejects.toMatchObject({ code: 'LAPSE_INVALID_INPUT' });
      await expect(store.create({ idleTimeout: 1e300 })).rejects.toMatchObject({ code: 'LAPSE_INVALID_INPUT' });
      const lease = await store.lock(session.id, { ttl: '1h' });
      await expect(lease.extend(MAX_LEASE_MS + 1)).rejects.toMatchObject({ code: 'LAPSE_INVALID_INPUT' });
      await lease.release();
    } finally {
      await store.close();
    }
  });

  it('refuses deep data with a LapseError, never a RangeError, however deep', async () => {
    const store = createStore({ sweepInterval: false });
    try {
      for (const levels of [MAX_DATA_DEPTH + 1, 20_000]) {
        const deep = JSON.parse(nested(levels));
        let thrown: unknown;
        try {
          encodeData(deep, 1e9);
        } catch (err) {
          thrown = err;
        }
        expect(thrown).toBeInstanceOf(LapseError);
        expect((thrown as LapseError).code).toBe('LAPSE_INVALID_INPUT');
        await expect(store.create({ data: deep })).rejects.toMatchObject({ code: 'LAPSE_INVALID_INPUT' });
        await expect(store.set('x', deep)).rejects.toMatchObject({ code: 'LAPSE_INVALID_INPUT' });
      }
      const { session } = await store.create({});
      await expect(store.update(session.id, () => JSON.parse(nested(50_000)))).rejects.toMatchObject({ code: 'LAPSE_INVALID_INPUT' });
      // Deep arrays count as well as objects.
      const arrays = JSON.parse(`${'['.repeat(MAX_DATA_DEPTH + 1)}${']'.repeat(MAX_DATA_DEPTH + 1)}`);
      expect(() => encodeData(arrays, 1e9)).toThrow(expect.objectContaining({ code: 'LAPSE_INVALID_INPUT' }));
    } finally {
      await store.close();
    }
  });
});
