import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type LapseServer } from '../src/server/index.js';
import { tempDir } from '../../../test/helpers/tmp.js';

/** Small seeded PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const str = (n: number, alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~%/\\"\'{}[]<>\u0000\u00e9\ud83d\ude00 ') =>
    Array.from({ length: n }, () => {
      const chars = Array.from(alphabet); // code points: never half a surrogate pair
      return chars[int(chars.length)];
    }).join('');
  return { next, int, pick, str };
}

const SEED = 20_241_122;
const TOTAL = 2400;
const r = rng(SEED);

let app: LapseServer;
let base: string;
let admin: string;
let appKey: string;
let token: string;
let cleanup: () => void;
const logLines: string[] = [];

beforeAll(async () => {
  const tmp = tempDir('lapse-fuzz-');
  cleanup = tmp.cleanup;
  const logStream = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  });
  app = await createServer({ backend: 'memory', dataDir: tmp.dir, logLevel: 'warn', logStream, sweepInterval: 'off' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  admin = app.lapse.generatedAdminKey as string;
  appKey = app.lapse.keys.create('fuzz').key;
  token = (await app.lapse.store.create({ userId: 'fuzz' })).token;
});

afterAll(async () => {
  await app?.close();
  cleanup?.();
});

// Every route but /v1/console/events (a stream that stays open; console.test.ts covers its refusals).
const ROUTES: [string, string][] = [
  ['POST', '/v1/sessions'],
  ['POST', '/v1/sessions/validate'],
  ['POST', '/v1/sessions/rotate'],
  ['POST', '/v1/sessions/revoke'],
  ['GET', '/v1/sessions/ID'],
  ['PATCH', '/v1/sessions/ID'],
  ['DELETE', '/v1/sessions/ID'],
  ['POST', '/v1/sessions/ID/lock'],
  ['DELETE', '/v1/sessions/ID/lock'],
  ['GET', '/v1/sessions'],
  ['GET', '/v1/users/ID/sessions'],
  ['DELETE', '/v1/users/ID/sessions'],
  ['GET', '/v1/jobs'],
  ['POST', '/v1/jobs/ID/run'],
  ['GET', '/v1/stats'],
  ['GET', '/v1/keys'],
  ['POST', '/v1/keys'],
  ['DELETE', '/v1/keys/ID'],
  ['GET', '/v1/console/figures'],
  ['GET', '/v1/console/series'],
  ['GET', '/v1/console/jobs'],
  ['GET', '/v1/console/connections'],
  ['POST', '/v1/console/connections/ID/disconnect'],
  ['GET', '/v1/console/sessions'],
  ['GET', '/v1/console/users'],
  ['GET', '/v1/console/users/ID/devices'],
  ['GET', '/health'],
  ['GET', '/health/connections'],
  ['GET', '/metrics'],
  ['GET', '/openapi.json'],
];

/** A hostile JSON value: wrong types, deep nesting, odd numbers, prototype tricks. */
function hostileValue(depth = 0): unknown {
  switch (r.int(depth > 3 ? 7 : 10)) {
    case 0: return null;
    case 1: return r.pick([0, -1, 1e308, -0, 2 ** 53 + 1, 3.5, Number.MAX_SAFE_INTEGER]);
    case 2: return r.str(r.int(40));
    case 3: return r.pick([true, false]);
    case 4: return r.pick(['30s', '-5m', '0', '9999999d', 'NaN', '1e9ms', '', '  ', '99999999999999999999d', '401d', 1e300, 34_560_000_001, 2 ** 31]);
    case 5: return `${r.str(22, 'abcXYZ019-_')}.${r.str(43, 'abcXYZ019-_')}`;
    case 6: return 'x'.repeat(r.int(3000));
    case 7: return Array.from({ length: r.int(5) }, () => hostileValue(depth + 1));
    case 8: return Object.fromEntries(Array.from({ length: r.int(5) }, () => [r.pick(['token', 'data', 'userId', 'fence', 'ttl', 'owner', 'wait', 'expectedVersion', '__proto__', 'constructor', r.str(5)]), hostileValue(depth + 1)]));
    default: {
      let v: unknown = 1;
      for (let i = 0; i < 200; i++) v = { a: v };
      return v;
    }
  }
}

/** `levels` arrays or objects deep, as text (a value that deep could not even be built on the stack). */
function deepText(levels: number): string {
  return r.int(2) === 0 ? `${'['.repeat(levels)}${']'.repeat(levels)}` : `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
}

let deepSent = 0;
let absurdSent = 0;

function hostileBody(): string | undefined {
  switch (r.int(11)) {
    case 9: {
      deepSent++;
      const field = r.pick(['data', 'data', 'token', 'ttl', 'owner', 'fence', 'userId']);
      return `{"${field}":${deepText(r.pick([65, 2500, 20_000]))}}`;
    }
    case 10: {
      absurdSent++;
      const field = r.pick(['idleTimeout', 'absoluteTimeout', 'ttl', 'wait']);
      return JSON.stringify({ [field]: r.pick([1e300, '99999999999999999999d', '401d', '25h', 34_560_000_001, Number.MAX_SAFE_INTEGER]) });
    }
    case 0: return undefined;
    case 1: return r.str(r.int(200)); // not JSON
    case 2: return `{"token": "${r.str(10)}`; // truncated
    case 3: return '{"__proto__": {"admin": true}, "token": "x"}';
    case 4: return JSON.stringify({ constructor: { prototype: { x: 1 } } });
    case 5: return JSON.stringify({ token: r.pick([token, `${token}x`, token.toUpperCase(), '', null, 5, [token]]) });
    case 6: return 'x'.repeat(r.pick([2 * 1024 * 1024, 1024 * 1024 + 1, 64 * 1024]));
    default: return JSON.stringify(hostileValue());
  }
}

function hostileId(): string {
  return r.pick([
    r.str(1 + r.int(30), 'abcXYZ019-_'),
    encodeURIComponent(r.str(1 + r.int(20))),
    'a'.repeat(300),
    '%00',
    '..%2F..%2Fetc%2Fpasswd',
    encodeURIComponent(token),
    '%E0%A4%A',
    'session_cleanup',
  ]);
}

function hostileAuth(): Record<string, string> {
  return r.pick<Record<string, string>>([
    {},
    { authorization: `Bearer ${admin}` },
    { authorization: `Bearer ${admin}` },
    { authorization: `Bearer ${appKey}` },
    { authorization: `Bearer ${appKey}x` },
    { authorization: `bearer ${admin}` },
    { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
    { authorization: `Bearer ${'k'.repeat(5000)}` },
    { authorization: 'Bearer ' },
    { authorization: `Bearer lapse_admin_${r.str(43, 'abcXYZ019-_')}` },
  ]);
}

function request(): { method: string; url: string; headers: Record<string, string>; body?: string } {
  const kind = r.int(10);
  if (kind === 0) {
    // Unknown routes and methods.
    const method = r.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']);
    return { method, url: `/${r.pick(['v1', 'v2', 'admin', '.env', 'socket.io', 'web'])}/${encodeURIComponent(r.str(1 + r.int(15)))}`, headers: hostileAuth() };
  }
  const [method, path] = r.pick(ROUTES);
  let url = path.replace('ID', hostileId());
  if (r.int(4) === 0) url += `?${r.pick(['limit=-1', 'limit=1001', 'limit=abc', 'limit=5&cursor=', `cursor=${encodeURIComponent(r.str(10))}`, 'fence=x', 'except=', 'fence=99999999999999999999', '%%%', `prefix=${encodeURIComponent(r.str(r.int(300)))}`, `user=${'u'.repeat(257)}`, `room=${encodeURIComponent(r.str(8))}`, `sid=${encodeURIComponent(r.str(20))}`, 'limit=0', `cursor=${'c'.repeat(300)}`])}`;
  const headers = hostileAuth();
  const body = method === 'GET' ? undefined : hostileBody();
  if (body !== undefined) headers['content-type'] = r.pick(['application/json', 'application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1']);
  return { method, url, headers, ...(body === undefined ? {} : { body }) };
}

/** Raw bytes no HTTP client would send. */
function rawRequest(payload: string): Promise<string> {
  const { port } = app.server.address() as AddressInfo;
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let out = '';
    const done = () => resolve(out);
    sock.setTimeout(3000, () => sock.destroy());
    sock.on('data', (d) => (out += d));
    sock.on('close', done);
    sock.on('error', done);
    sock.write(payload);
    sock.end();
  });
}

describe('HTTP fuzz', () => {
  it(`answers ${TOTAL} malformed or hostile requests without a single 5xx, and still serves`, async () => {
    const statuses = new Map<number, number>();
    const fiveXX: string[] = [];
    let sent = 0;
    while (sent < TOTAL) {
      const batch = Array.from({ length: 16 }, () => request());
      sent += batch.length;
      const results = await Promise.all(
        batch.map(async (q) => {
          const res = await fetch(`${base}${q.url}`, { method: q.method, headers: q.headers, ...(q.body === undefined ? {} : { body: q.body }) });
          await res.arrayBuffer();
          return { q, status: res.status };
        }),
      );
      for (const { q, status } of results) {
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status >= 500) fiveXX.push(`${status} ${q.method} ${q.url} ${q.body?.slice(0, 80) ?? ''}`);
      }
    }
    const raw = [
      'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
      'POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'GARBAGE\r\n\r\n',
      `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
      `POST /v1/sessions/validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"token":`,
    ];
    for (const payload of raw) {
      const answer = await rawRequest(payload);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
      if (status >= 500) fiveXX.push(`raw ${status} ${payload.slice(0, 40)}`);
    }
    expect(fiveXX).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(2000);
    expect(deepSent).toBeGreaterThan(50);
    expect(absurdSent).toBeGreaterThan(50);
    // The mix really hit the refusals it means to.
    for (const s of [400, 401, 403, 404, 413]) expect(statuses.get(s) ?? 0, `status ${s}`).toBeGreaterThan(0);

    // Straight at the routes that take data and durations, so each of them is surely hit.
    const { session: target } = (await (await fetch(`${base}/v1/sessions`, { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: '{}' })).json()) as { session: { id: string } };
    const aimed: [string, string, string][] = [];
    for (const levels of [65, 2500, 100_000]) {
      aimed.push(['POST', '/v1/sessions', `{"data":${deepText(levels)}}`], ['PATCH', `/v1/sessions/${target.id}`, `{"data":${deepText(levels)}}`]);
    }
    for (const v of ['1e300', '"99999999999999999999d"', '"401d"']) {
      aimed.push(['POST', '/v1/sessions', `{"idleTimeout":${v}}`], ['POST', '/v1/sessions', `{"absoluteTimeout":${v}}`], ['POST', `/v1/sessions/${target.id}/lock`, `{"ttl":${v}}`]);
    }
    for (const [method, url, body] of aimed) {
      const res = await fetch(`${base}${url}`, { method, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body });
      const answer = (await res.json()) as { error?: { code: string } };
      expect(res.status, `${method} ${url} ${body.slice(0, 40)}`).toBe(400);
      expect(answer.error?.code).toBe('LAPSE_INVALID_INPUT');
    }

    const headers = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
    const health = await fetch(`${base}/health`, { headers });
    expect(health.status).toBe(200);
    const created = await fetch(`${base}/v1/sessions`, { method: 'POST', headers, body: JSON.stringify({ userId: 'after', data: { ok: true } }) });
    expect(created.status).toBe(201);
    const { session } = (await created.json()) as { session: { id: string } };
    const view = await fetch(`${base}/v1/sessions/${session.id}`, { headers });
    expect(((await view.json()) as { session: { data: unknown } }).session.data).toEqual({ ok: true });
    expect(logLines.filter((l) => l.includes('"level":50'))).toEqual([]);
  }, 90_000);
});
