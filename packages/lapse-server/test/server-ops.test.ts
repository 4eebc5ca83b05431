import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Backend } from 'lapse/internal';
import { memory } from 'lapse/internal';
import { silentLogger } from 'lapse/internal';
import { createServer, type LapseServer, onShutdown } from '../src/server/index.js';
import { createStore } from 'lapse/internal';
import { tempDir } from '../../../test/helpers/tmp.js';
import { cleanupsAfterEach } from '../../../test/helpers/cleanups.js';

const cleanups = cleanupsAfterEach();

async function start(extra: Parameters<typeof createServer>[0] = {}): Promise<{ app: LapseServer; admin: Record<string, string> }> {
  const tmp = tempDir('lapse-ops-');
  const app = await createServer({ backend: 'memory', dataDir: tmp.dir, logLevel: 'silent', sweepInterval: 'off', ...extra });
  cleanups.push(tmp.cleanup, () => app.close());
  return { app, admin: { authorization: `Bearer ${app.lapse.generatedAdminKey}` } };
}

/** A memory backend that fails every call while `down` is true. */
function flakyBackend(): { backend: Backend; setDown(v: boolean): void } {
  const inner = memory();
  let down = false;
  const backend = new Proxy(inner, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function' || prop === 'close' || prop === 'jobLease' || prop === 'onUnlock') return typeof v === 'function' ? v.bind(target) : v;
      return (...args: unknown[]) => {
        if (down) throw new Error('connection refused');
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as Backend;
  return { backend, setDown: (v) => (down = v) };
}

describe('health', () => {
  it('answers 200 with the backend name, and 503 while the backend is down', async () => {
    const { backend, setDown } = flakyBackend();
    const store = createStore({ backend, logger: silentLogger, sweepInterval: false });
    cleanups.push(() => store.close());
    const { app, admin } = await start({ store });
    const ok = await app.inject({ method: 'GET', url: '/health', headers: admin });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ status: 'ok', backend: 'memory' });
    setDown(true);
    const down = await app.inject({ method: 'GET', url: '/health', headers: admin });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toMatchObject({ status: 'unavailable', error: { code: 'LAPSE_BACKEND_UNAVAILABLE' } });
    const validate = await app.inject({ method: 'POST', url: '/v1/sessions/validate', headers: admin, payload: { token: `${'a'.repeat(22)}.${'b'.repeat(43)}` } });
    expect(validate.statusCode).toBe(503);
    expect(validate.json().error.code).toBe('LAPSE_BACKEND_UNAVAILABLE');
    const create = await app.inject({ method: 'POST', url: '/v1/sessions', headers: admin, payload: {} });
    expect(create.statusCode).toBe(503);
    setDown(false);
    expect((await app.inject({ method: 'GET', url: '/health', headers: admin })).statusCode).toBe(200);
  });

  it('reports zero connections until a provider is attached, then its stats', async () => {
    const { app, admin } = await start();
    const zero = await app.inject({ method: 'GET', url: '/health/connections', headers: admin });
    const none = { totalSessions: 0, uniqueUsers: 0, activeRooms: 0, sessionsPerRoom: {} };
    expect(zero.json()).toEqual({ ...none, nodes: 1, node: { nodeId: null, ...none } });
    app.lapse.connections = { stats: async () => ({ totalSessions: 3, uniqueUsers: 2, activeRooms: 1, sessionsPerRoom: { lobby: 3 } }) };
    const some = await app.inject({ method: 'GET', url: '/health/connections', headers: admin });
    expect(some.json()).toEqual({ totalSessions: 3, uniqueUsers: 2, activeRooms: 1, sessionsPerRoom: { lobby: 3 } });
  });
});

describe('metrics', () => {
  it('exposes session gauges, event counters, the validate histogram and job counts', async () => {
    const { app, admin } = await start({ sweepInterval: '1m' });
    const post = (url: string, payload: object) => app.inject({ method: 'POST', url, headers: admin, payload });
    const { token } = (await post('/v1/sessions', { userId: 'u' })).json();
    await post('/v1/sessions/validate', { token });
    await post('/v1/sessions/validate', { token: 'bad' });
    const rotated = (await post('/v1/sessions/rotate', { token })).json();
    await post('/v1/sessions/revoke', { token: rotated.token });
    await post('/v1/sessions', {});
    await post('/v1/jobs/session_cleanup/run', {});
    const res = await app.inject({ method: 'GET', url: '/metrics', headers: admin });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    const text = res.body;
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(value('lapse_sessions')).toBe(1);
    expect(value('lapse_sessions_created_total')).toBe(2);
    expect(value('lapse_sessions_rotated_total')).toBe(1);
    expect(value('lapse_sessions_revoked_total')).toBe(1);
    expect(value('lapse_backend_up')).toBe(1);
    expect(value('lapse_backend_errors_total')).toBe(0);
    expect(value('lapse_validate_duration_seconds_count{result="valid"}')).toBe(1);
    expect(value('lapse_validate_duration_seconds_count{result="invalid"}')).toBe(1);
    expect(value('lapse_job_runs_total{job="session_cleanup"}')).toBe(1);
    expect(value('lapse_job_failures_total{job="session_cleanup"}')).toBe(0);
    expect(text).toMatch(/lapse_http_requests_total\{method="POST",route="\/v1\/sessions",status="201"\} 2/);
  });

  it('keeps a registry per server: two servers in one process do not collide', async () => {
    const a = await start();
    const b = await start();
    await a.app.inject({ method: 'POST', url: '/v1/sessions', headers: a.admin, payload: {} });
    const text = (await b.app.inject({ method: 'GET', url: '/metrics', headers: b.admin })).body;
    expect(text).toMatch(/^lapse_sessions_created_total 0$/m);
  });
});

describe('openapi', () => {
  it('documents every route of the design from the route schemas', async () => {
    const { app, admin } = await start();
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json', headers: admin })).json();
    expect(doc.openapi).toBe('3.1.0');
    const ops = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, m]) => Object.keys(m).map((k) => `${k.toUpperCase()} ${p}`));
    for (const op of [
      'POST /v1/sessions',
      'POST /v1/sessions/validate',
      'POST /v1/sessions/rotate',
      'GET /v1/sessions/{id}',
      'PATCH /v1/sessions/{id}',
      'DELETE /v1/sessions/{id}',
      'POST /v1/sessions/{id}/lock',
      'DELETE /v1/sessions/{id}/lock',
      'GET /v1/sessions',
      'GET /v1/users/{userId}/sessions',
      'DELETE /v1/users/{userId}/sessions',
      'GET /v1/jobs',
      'POST /v1/jobs/{id}/run',
      'GET /health',
      'GET /health/connections',
      'GET /metrics',
    ]) {
      expect(ops, op).toContain(op);
    }
    const validate = doc.paths['/v1/sessions/validate'].post;
    expect(validate.requestBody.content['application/json'].schema.required).toEqual(['token']);
    expect(Object.keys(validate.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '503']));
    expect(doc.paths['/v1/sessions'].get['x-lapse-role']).toBe('admin');
    expect(doc.paths['/v1/sessions/{id}'].get.parameters[0]).toMatchObject({ name: 'id', in: 'path', required: true });
    // docs/http.md has a section, with a curl example, for every documented route.
    const md = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'http.md'), 'utf8');
    for (const op of ops) {
      const [method, path] = op.split(' ') as [string, string];
      expect(md, op).toContain(`\`${method} ${path.replace(/\{(\w+)\}/g, ':$1')}`);
    }
    expect(md.match(/^curl /gm)?.length ?? md.split('curl -s').length - 1).toBeGreaterThanOrEqual(ops.length);
  });
});

describe('logs', () => {
  it('never writes a token or a key, whatever the request', async () => {
    const lines: string[] = [];
    const logStream = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const { app, admin } = await start({ logLevel: 'trace', logStream });
    const { key: appKey } = app.lapse.keys.create('web');
    const secrets = [admin.authorization?.slice(7) as string, appKey];
    const headers = { authorization: `Bearer ${appKey}` };
    const created = await app.inject({ method: 'POST', url: '/v1/sessions', headers, payload: { userId: 'u' } });
    const token: string = created.json().token;
    secrets.push(token, token.split('.')[1] as string);
    const rotated = (await app.inject({ method: 'POST', url: '/v1/sessions/rotate', headers, payload: { token } })).json().token as string;
    secrets.push(rotated, rotated.split('.')[1] as string);
    await app.inject({ method: 'POST', url: '/v1/sessions/validate', headers, payload: { token: rotated } });
    await app.inject({ method: 'POST', url: '/v1/sessions/validate', headers, payload: { token } });
    await app.inject({ method: 'POST', url: '/v1/sessions/validate', headers: { ...headers, 'content-type': 'application/json' }, payload: `{"token":"${rotated}` });
    await app.inject({ method: 'POST', url: '/v1/sessions/validate', headers: { authorization: `Bearer ${appKey}x` }, payload: { token: rotated } });
    await app.inject({ method: 'GET', url: `/v1/sessions/${rotated}`, headers: admin });
    await app.inject({ method: 'GET', url: `/nowhere/${rotated}?token=${rotated}&key=${appKey}`, headers: admin });
    await app.inject({ method: 'GET', url: `/v1/sessions?cursor=${rotated}`, headers: admin });
    await app.close();
    const all = lines.join('');
    expect(lines.length).toBeGreaterThan(8);
    expect(all).toContain('"url":"/v1/sessions/validate"');
    for (const s of secrets) expect(all).not.toContain(s);
  });
});

describe('shutdown', () => {
  it('closes once on the first signal and exits 0; a second signal exits 1 at once', async () => {
    const codes: number[] = [];
    let release: () => void = () => {};
    let closes = 0;
    const off = onShutdown(
      () => {
        closes++;
        return new Promise<void>((r) => (release = r));
      },
      { signals: ['SIGUSR2'], exit: (c) => codes.push(c), log: () => {} },
    );
    cleanups.push(off);
    process.emit('SIGUSR2', 'SIGUSR2');
    expect(closes).toBe(1);
    expect(codes).toEqual([]);
    process.emit('SIGUSR2', 'SIGUSR2');
    expect(codes).toEqual([1]);
    release();
    await new Promise((r) => setImmediate(r));
    expect(codes).toEqual([1, 0]);
    expect(closes).toBe(1);
  });

  it('finishes in-flight requests before closing the store', async () => {
    const inner = memory();
    let entered: () => void = () => {};
    const reached = new Promise<void>((r) => (entered = r));
    let gate: () => void = () => {};
    const slowGets = { on: false };
    // A backend whose reads wait for the test, so a request is really in flight at close().
    const backend = new Proxy(inner, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (prop !== 'get' || typeof v !== 'function') return typeof v === 'function' ? v.bind(target) : v;
        return (...args: unknown[]) => {
          if (!slowGets.on) return (v as (...a: unknown[]) => unknown).apply(target, args);
          entered();
          return new Promise((r) => (gate = () => r((v as (...a: unknown[]) => unknown).apply(target, args))));
        };
      },
    }) as Backend;
    const store = createStore({ backend, logger: silentLogger, sweepInterval: false });
    const { app, admin } = await start({ store });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const { token } = await store.create({ userId: 'u' });
    slowGets.on = true;
    const pending = fetch(`${url}/v1/sessions/validate`, {
      method: 'POST',
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    await reached;
    const closing = app.close();
    gate();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { session: { userId: string } }).session.userId).toBe('u');
    await closing;
    // A store passed in belongs to the caller: the server leaves it open.
    expect(store.closed).toBe(false);
    await store.close();
  });

  it('closes the store it opened itself', async () => {
    const { app } = await start();
    await app.close();
    expect(app.lapse.store.closed).toBe(true);
  });
});
