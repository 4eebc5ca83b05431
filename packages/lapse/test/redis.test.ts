import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { type RedisBackend, redis } from '../src/backends/redis/backend.js';
import { RESULT, checkReply } from '../src/backends/redis/codes.js';
import type { LapseErrorCode } from '../src/core/errors.js';
import { silentLogger } from '../src/util/logger.js';
import { newRecord, type SessionRecord } from '../src/core/session.js';
import { describeRedis, randomPrefix, type RedisServer, startRedis } from '../../../test/helpers/redis-server.js';

const T0 = 2_000_000_000_000;
const MIN = 60_000;
const LUA_DIR = join(import.meta.dirname, '../src/backends/redis');

function rec(id: string, over: Partial<SessionRecord> = {}): SessionRecord {
  const createdAt = over.createdAt ?? T0;
  const base = newRecord({
    id,
    secretHash: 'hash',
    userId: null,
    data: '{"n":1}',
    now: createdAt,
    idleTimeout: over.idleTimeout ?? 10 * MIN,
    absoluteTimeout: (over.absoluteExpiresAt ?? createdAt + 60 * MIN) - createdAt,
  });
  return { ...base, ...over };
}

/** Matches a LapseError with this code (for `.rejects.toThrowError` / `.toThrowError`). */
const lapseError = (code: LapseErrorCode) => expect.objectContaining({ name: 'LapseError', code });

describeRedis('redis backend', () => {
  let server: RedisServer;
  let admin: Redis;
  let open: RedisBackend[] = [];

  beforeAll(async () => {
    server = await startRedis();
    admin = new Redis(server.url);
  });
  afterEach(async () => {
    for (const b of open) await b.close();
    open = [];
  });
  afterAll(async () => {
    admin?.disconnect();
    await server?.stop();
  });

  function make(opts: Parameters<typeof redis>[0] = {}): RedisBackend {
    const b = redis({ url: server.url, prefix: randomPrefix(), logger: silentLogger, ...opts });
    open.push(b);
    return b;
  }

  /** Every key under the backend's prefix (test-only SCAN). */
  async function keysOf(b: RedisBackend): Promise<string[]> {
    const out: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await admin.scan(cursor, 'MATCH', `${b.keys.prefix}*`, 'COUNT', 1000);
      cursor = next;
      out.push(...batch);
    } while (cursor !== '0');
    return out.sort();
  }

  /** Every id any index of the backend still holds. */
  async function indexedIds(b: RedisBackend): Promise<Set<string>> {
    const k = b.keys;
    const ids = new Set<string>([...(await admin.zrange(k.lru, 0, -1)), ...(await admin.zrange(k.ids, 0, -1)), ...(await admin.zrange(k.locks, 0, -1))]);
    for (const m of await admin.zrange(k.exp, 0, -1)) ids.add(m.split('\0')[0] as string);
    for (const uid of await admin.smembers(k.users)) for (const id of await admin.zrange(k.user(uid), 0, -1)) ids.add(id);
    for (const key of await keysOf(b)) if (key.startsWith(`${k.prefix}u:`)) for (const id of await admin.zrange(key, 0, -1)) ids.add(id);
    return ids;
  }

  it('keeps every key under its prefix, one string key per session with the id as hash tag and a native expiry', async () => {
    const b = make({ expiryGrace: '30s' });
    await b.insert(rec('s1', { userId: 'alice' }), T0, {});
    const k = b.keys;
    expect(await keysOf(b)).toEqual([k.exp, k.ids, k.lru, k.seq, k.session('s1'), k.user('alice'), k.userOrder, k.users].sort());
    expect(k.session('s1')).toBe(`${k.prefix}s:{s1}`);
    const pttl = await admin.pttl(k.session('s1'));
    // Remaining lifetime (10 min on the caller's clock) plus the grace, counted on Redis's clock.
    expect(pttl).toBeGreaterThan(10 * MIN + 25_000);
    expect(pttl).toBeLessThanOrEqual(10 * MIN + 30_000);
    await b.touch('s1', T0 + 5 * MIN, 1, T0 + 5 * MIN);
    expect(await admin.pttl(k.session('s1'))).toBeGreaterThan(10 * MIN); // slid with the session
  });

  it('round-trips every record field, nulls included', async () => {
    const b = make();
    const full = rec('full', { userId: 'u', ip: '127.0.0.1', userAgent: 'ua/1', data: '{"a":[1,"é"]}', accessCount: 3 });
    const { record } = await b.insert(full, T0, {});
    expect(record).toEqual(full);
    expect(await b.get('full', T0)).toEqual(full);
    const bare = rec('bare');
    await b.insert(bare, T0, {});
    expect(await b.get('bare', T0)).toEqual(bare);
    expect(await b.get('bare', bare.expiresAt)).toBeNull();
    expect(await b.get('missing', T0)).toBeNull();
    // Through a Lua rewrite (touch): cjson must neither mangle strings nor round numbers.
    const odd = rec('odd', {
      userId: 'ü/"\\x',
      userAgent: 'Mozilla/5.0 "q" \u2028 😀',
      data: JSON.stringify({ s: 'a/b "q" \\ \u2028 😀', empty: [], obj: {} }),
      absoluteExpiresAt: 8_000_000_000_000_123,
    });
    await b.insert(odd, T0, {});
    const touched = await b.touch('odd', T0 + 1, 1, T0 + 1);
    expect(touched).toEqual({ ...odd, lastAccessedAt: T0 + 1, expiresAt: T0 + 1 + odd.idleTimeout, accessCount: 1 });
    expect(await b.get('odd', T0 + 1)).toEqual(touched);
    expect((await b.listUser(odd.userId as string, T0 + 1))[0]).toEqual(touched);
  });

  it('decode cache: reuses a decoding only while the stored text is byte-identical', async () => {
    const b = make();
    await b.insert(rec('a', { data: '{"v":1}' }), T0, {});
    const first = await b.get('a', T0);
    expect(await b.get('a', T0)).toBe(first); // same text: the same decoded record
    expect(await b.get('a', first?.expiresAt as number)).toBeNull(); // a reused record still expires
    // Another client rewrites it behind our back: the new text is decoded, never the old one served.
    await b.update('a', '{"v":2}', T0, {});
    const second = await b.get('a', T0);
    expect(second).not.toBe(first);
    expect(second).toMatchObject({ data: '{"v":2}', version: 2 });
    await admin.del(b.keys.session('a'));
    expect(await b.get('a', T0)).toBeNull();
    // Off: every read decodes afresh.
    const plain = make({ decodeCache: 0 });
    await plain.insert(rec('p'), T0, {});
    const p1 = await plain.get('p', T0);
    expect(await plain.get('p', T0)).not.toBe(p1);
    expect(await plain.get('p', T0)).toEqual(p1);
    expect(() => make({ decodeCache: -1 })).toThrowError(lapseError('LAPSE_INVALID_OPTION'));
  });

  it('sends the commands of one tick in one socket write, and a lone call at once', async () => {
    const b = make();
    for (const id of ['w0', 'w1', 'w2']) await b.insert(rec(id, { data: `{"id":"${id}"}` }), T0, {});
    // Count what reaches the real socket: corked writes leave together through _writev.
    type Socket = { _write: (...args: unknown[]) => unknown; _writev: (chunks: unknown[], cb: unknown) => unknown };
    const socket = (b as unknown as { conn: { client: { stream: Socket } } }).conn.client.stream;
    const calls = { write: 0, writev: 0, chunks: 0 };
    const write = socket._write;
    const writev = socket._writev;
    socket._write = function (this: unknown, ...args: unknown[]) {
      calls.write++;
      return write.apply(this, args);
    };
    socket._writev = function (this: unknown, chunks: unknown[], cb: unknown) {
      calls.writev++;
      calls.chunks += chunks.length;
      return writev.call(this, chunks, cb);
    };
    try {
      const reads = await Promise.all(Array.from({ length: 30 }, (_, i) => b.get(`w${i % 3}`, T0)));
      expect(reads.map((r) => r?.data)).toEqual(Array.from({ length: 30 }, (_, i) => `{"id":"w${i % 3}"}`));
      expect(calls).toEqual({ write: 0, writev: 1, chunks: 30 });
      // A call alone still goes out (at the end of its tick) and is answered.
      calls.writev = 0;
      calls.chunks = 0;
      expect((await b.get('w1', T0))?.data).toBe('{"id":"w1"}');
      expect(calls.write + calls.writev).toBe(1);
    } finally {
      socket._write = write;
      socket._writev = writev;
    }
  });

  it('touch takes the later access time, counts accesses and keeps the absolute cap', async () => {
    const b = make();
    await b.insert(rec('s', { absoluteExpiresAt: T0 + 15 * MIN }), T0, {});
    const t1 = await b.touch('s', T0 + 2 * MIN, 3, T0 + 2 * MIN);
    expect(t1).toMatchObject({ lastAccessedAt: T0 + 2 * MIN, accessCount: 3, expiresAt: T0 + 12 * MIN });
    const t2 = await b.touch('s', T0 + MIN, 1, T0 + 3 * MIN); // an older access, written late
    expect(t2).toMatchObject({ lastAccessedAt: T0 + 2 * MIN, accessCount: 4, expiresAt: T0 + 12 * MIN });
    const t3 = await b.touch('s', T0 + 8 * MIN, 1, T0 + 8 * MIN);
    expect(t3?.expiresAt).toBe(T0 + 15 * MIN);
    expect(await b.touch('s', T0 + 15 * MIN, 1, T0 + 15 * MIN)).toBeNull();
  });

  it('maps every script result code to its LapseError in one place', async () => {
    const b = make();
    await b.insert(rec('s'), T0, {});
    await expect(b.insert(rec('s'), T0, {})).rejects.toThrowError(lapseError('LAPSE_INVALID_INPUT'));
    await expect(b.update('nope', '1', T0, {})).rejects.toThrowError(lapseError('LAPSE_NOT_FOUND'));
    await expect(b.update('s', '1', T0, { expectedVersion: 7 })).rejects.toThrowError(lapseError('LAPSE_VERSION_CONFLICT'));
    const lease = await b.lock('s', 'me', 10_000, T0);
    await expect(b.update('s', '1', T0, {})).rejects.toThrowError(lapseError('LAPSE_LOCKED'));
    await expect(b.extendLock('s', lease.fence + 1, 1000, T0)).rejects.toThrowError(lapseError('LAPSE_LOCKED'));
    await b.insert(rec('t'), T0, {});
    await expect(b.rotate('s', { id: 't', secretHash: 'x' }, T0, { fence: lease.fence })).rejects.toThrowError(lapseError('LAPSE_INVALID_INPUT'));
    expect(() => checkReply([RESULT.OK, 'x'], { id: 's' })).not.toThrow();
    expect(() => checkReply([99], { id: 's' })).toThrow(/unexpected script reply/);
  });

  it('replace keeps history and moves the session to its new user index', async () => {
    const b = make();
    await b.insert(rec('s', { userId: 'a', accessCount: 5 }), T0, {});
    const lease = await b.lock('s', 'o', 2 * MIN, T0);
    await expect(b.insert(rec('s', { userId: 'b' }), T0 + 1, {}, { replace: true })).rejects.toThrowError(lapseError('LAPSE_LOCKED'));
    const { record } = await b.insert(rec('s', { userId: 'b', createdAt: T0 + MIN, data: '2' }), T0 + MIN, {}, { replace: true, fence: lease.fence });
    expect(record).toMatchObject({ userId: 'b', createdAt: T0, accessCount: 5, version: 2, data: '2', lock: { fence: lease.fence } });
    expect(await b.listUser('a', T0 + MIN)).toEqual([]);
    expect((await b.listUser('b', T0 + MIN)).map((r) => r.id)).toEqual(['s']);
    expect(await b.stats(T0 + MIN)).toEqual({ sessions: 1, users: 1, locked: 1 });
    expect(await indexedIds(b)).toEqual(new Set(['s']));
  });

  it('after expiry and sweep no index holds a dead id', async () => {
    const b = make();
    for (let i = 0; i < 40; i++) {
      const userId = i % 3 === 0 ? null : `user${i % 5}`;
      await b.insert(rec(`s${i}`, { userId, idleTimeout: (1 + (i % 4)) * MIN }), T0, { maxSessionsPerUser: 6 });
    }
    await b.lock('s1', 'o', 30 * MIN, T0);
    await b.lock('s2', 'o', 1000, T0);
    await b.rotate('s4', { id: 's4b', secretHash: 'h2' }, T0 + 10, {});
    await b.insert(rec('s5', { userId: 'other', idleTimeout: MIN }), T0 + 20, {}, { replace: true });
    await b.touch('s7', T0 + 30, 1, T0 + 30);
    const stored = (await b.stats(T0)).sessions;
    expect(stored).toBeGreaterThan(30);
    expect((await b.stats(T0)).users).toBe(6);
    // Everything has expired by T0 + 5m; sweep in small batches.
    const now = T0 + 5 * MIN;
    let swept = 0;
    for (let round = 0; round < 20; round++) {
      const ended = await b.sweep(now, 7);
      expect(ended.length).toBeLessThanOrEqual(7);
      swept += ended.length;
      if (ended.length === 0) break;
    }
    expect(swept).toBe(stored);
    expect(await b.stats(now)).toEqual({ sessions: 0, users: 0, locked: 0 });
    expect(await indexedIds(b)).toEqual(new Set());
    // Only the two counters are left: the fencing numbers must keep growing.
    expect(await keysOf(b)).toEqual([b.keys.fence, b.keys.seq].sort());
  });

  it('cleans every index and names the reason when Redis already dropped the session', async () => {
    const b = make();
    await b.insert(rec('idle', { userId: 'u' }), T0, {});
    await b.insert(rec('abs', { userId: 'u', absoluteExpiresAt: T0 + 5 * MIN }), T0, {});
    await b.insert(rec('anon'), T0, {});
    await b.lock('anon', 'o', 60_000, T0);
    // What Redis's native expiry does: the session keys vanish, the indexes stay.
    await admin.del(b.keys.session('idle'), b.keys.session('abs'), b.keys.session('anon'));
    const ended = await b.sweep(T0 + 11 * MIN, 100);
    expect(ended.sort((x, y) => x.id.localeCompare(y.id))).toEqual([
      { id: 'abs', userId: 'u', reason: 'absolute' },
      { id: 'anon', userId: null, reason: 'idle' },
      { id: 'idle', userId: 'u', reason: 'idle' },
    ]);
    expect(await indexedIds(b)).toEqual(new Set());
    expect(await b.stats(T0 + 11 * MIN)).toEqual({ sessions: 0, users: 0, locked: 0 });
  });

  it('a reused id after Redis dropped the session keeps the new session whole', async () => {
    const b = make();
    await b.insert(rec('cart', { userId: 'old' }), T0, {});
    await admin.del(b.keys.session('cart'));
    await b.insert(rec('cart', { userId: 'new', createdAt: T0 + 20 * MIN }), T0 + 20 * MIN, {});
    expect(await b.sweep(T0 + 20 * MIN, 100)).toEqual([]); // only the stale expiry entry goes
    expect(await b.get('cart', T0 + 20 * MIN)).toMatchObject({ userId: 'new' });
    expect(await b.listUser('old', T0 + 20 * MIN)).toEqual([]);
    expect(await admin.exists(b.keys.user('old'))).toBe(0);
    expect(await b.stats(T0 + 20 * MIN)).toEqual({ sessions: 1, users: 1, locked: 0 });
  });

  it('Redis itself frees an expired session key (native expiry), and the sweep then cleans the indexes', async () => {
    const b = make({ expiryGrace: 0 });
    const now = Date.now();
    await b.insert(rec('short', { userId: 'u', createdAt: now, idleTimeout: 50 }), now, {});
    const deadline = Date.now() + 5000;
    while ((await admin.exists(b.keys.session('short'))) === 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(await admin.exists(b.keys.session('short'))).toBe(0);
    expect(await b.sweep(now + 60, 10)).toEqual([{ id: 'short', userId: 'u', reason: 'idle' }]);
    expect(await indexedIds(b)).toEqual(new Set());
  });

  it('counts sessions, users and leases from the indexes', async () => {
    const b = make();
    await b.insert(rec('a', { userId: 'u1' }), T0, {});
    await b.insert(rec('b', { userId: 'u1', idleTimeout: MIN }), T0, {});
    await b.insert(rec('c', { userId: 'u2' }), T0, {});
    await b.lock('a', 'o', 1000, T0);
    expect(await b.stats(T0)).toEqual({ sessions: 3, users: 2, locked: 1 });
    expect(await b.count(T0 + MIN)).toBe(2); // b expired, not swept
    expect(await b.stats(T0 + MIN)).toEqual({ sessions: 3, users: 2, locked: 0 });
    await b.removeUser('u1', T0 + MIN);
    expect(await b.stats(T0 + MIN)).toEqual({ sessions: 1, users: 1, locked: 0 });
  });

  it('keeps the ordered user index with the users set, in every script that adds or ends a session', async () => {
    const b = make();
    const mirrors = async () => expect(await admin.zrange(b.keys.userOrder, 0, -1)).toEqual((await admin.smembers(b.keys.users)).sort());
    await b.insert(rec('a', { userId: 'u1' }), T0, {});
    await b.insert(rec('b', { userId: 'u1', idleTimeout: MIN }), T0, {});
    await b.insert(rec('c', { userId: 'u2' }), T0, {});
    await b.insert(rec('d', { userId: 'u3' }), T0, {});
    await b.insert(rec('e', { userId: 'u4' }), T0, { maxSessionsPerUser: 1 });
    await mirrors();
    expect(await admin.zrange(b.keys.userOrder, 0, -1)).toEqual(['u1', 'u2', 'u3', 'u4']);
    await b.remove('c', T0, {});
    await b.insert(rec('d', { userId: 'u5' }), T0, {}, { replace: true }); // moved to another user
    await b.sweep(T0 + MIN, 100); // b idled out; u1 keeps a
    await b.removeUser('u4', T0 + MIN);
    await mirrors();
    expect(await b.scanUsers('u', null, 10, T0 + MIN)).toEqual([
      { userId: 'u1', sessions: 1 },
      { userId: 'u5', sessions: 1 },
    ]);
    await b.clear();
    expect(await admin.exists(b.keys.userOrder)).toBe(0);
  });

  it('fills the ordered user index once from data written before it existed', async () => {
    const prefix = randomPrefix();
    const first = make({ prefix });
    for (let i = 0; i < 1200; i++) await first.insert(rec(`s${i}`, { userId: `user-${String(i % 600).padStart(3, '0')}` }), T0, {});
    await admin.del(first.keys.userOrder); // as an older Lapse left it
    await first.remove('s0', T0, {});
    await first.remove('s600', T0, {}); // user-000 has no session left
    const later = make({ prefix });
    const page = await later.scanUsers('user-00', null, 5, T0);
    expect(page).toEqual(['001', '002', '003', '004', '005'].map((n) => ({ userId: `user-${n}`, sessions: 2 })));
    expect(await admin.zcard(later.keys.userOrder)).toBe(599);
    expect(await admin.exists(`${later.keys.userOrder}:filled`)).toBe(1);
  });

  it('clear removes every session key in batches and fencing numbers keep growing', async () => {
    const b = make();
    for (let i = 0; i < 1200; i++) await b.insert(rec(`s${i}`, { userId: `u${i % 700}` }), T0, {});
    const before = await b.lock('s1', 'o', 1000, T0);
    await b.clear();
    expect(await keysOf(b)).toEqual([b.keys.fence, b.keys.seq].sort());
    await b.insert(rec('s1'), T0, {});
    expect((await b.lock('s1', 'o', 1000, T0)).fence).toBeGreaterThan(before.fence);
  });

  it('tells other processes when a lease is released (pub/sub)', async () => {
    const a = make();
    const other = redis({ url: server.url, prefix: a.keys.prefix, logger: silentLogger });
    open.push(other);
    const heard: string[] = [];
    const got = new Promise<void>((resolve) => {
      other.onUnlock((id) => {
        heard.push(id);
        resolve();
      });
    });
    // Until the subscription is in place a release could go unheard; wait for it.
    await waitFor(async () => (await admin.pubsub('NUMSUB', a.keys.unlockChannel))[1] === 1);
    await a.insert(rec('s'), T0, {});
    const lease = await a.lock('s', 'o', 10_000, T0);
    expect(await a.unlock('s', lease.fence + 1, T0)).toBe(false);
    expect(await a.unlock('s', lease.fence, T0)).toBe(true);
    await got;
    expect(heard).toEqual(['s']);
  });

  it('job lease: one holder per key, renew and release only with its token', async () => {
    const b = make();
    const lease = b.jobLease();
    const token = await lease.acquire('session_cleanup:1000', 5000);
    expect(token).toEqual(expect.any(String));
    expect(await lease.acquire('session_cleanup:1000', 5000)).toBeNull();
    expect(await lease.renew('session_cleanup:1000', 'not-the-token', 5000)).toBe(false);
    expect(await lease.renew('session_cleanup:1000', token as string, 60_000)).toBe(true);
    expect(await admin.pttl(b.keys.job('session_cleanup:1000'))).toBeGreaterThan(50_000);
    await lease.release('session_cleanup:1000', 'not-the-token');
    expect(await lease.acquire('session_cleanup:1000', 5000)).toBeNull();
    await lease.release('session_cleanup:1000', token as string);
    expect(await lease.acquire('session_cleanup:1000', 50)).toEqual(expect.any(String));
    await waitFor(async () => (await admin.exists(b.keys.job('session_cleanup:1000'))) === 0);
    expect(await lease.acquire('session_cleanup:1000', 5000)).toEqual(expect.any(String));
  });

  it('leaves a client it was given open, and checks its options', async () => {
    const client = new Redis(server.url);
    const b = redis({ client, prefix: randomPrefix() });
    await b.insert(rec('s'), T0, {});
    await b.close();
    await b.close();
    expect(await client.ping()).toBe('PONG');
    await expect(b.get('s', T0)).rejects.toThrowError(lapseError('LAPSE_CLOSED'));
    client.disconnect();
    expect(() => redis({ client, url: server.url })).toThrow(/either client or url/);
    for (const bad of [{ commandTimeout: 'soon' }, { commandTimeout: 0 }, { expiryGrace: -1 }]) {
      expect(() => redis(bad)).toThrowError(lapseError('LAPSE_INVALID_OPTION'));
    }
    const own = make();
    expect((own.client as Redis).options.commandTimeout).toBe(2000); // the default bound
  });

  it('scripts follow the conventions: name-<numKeys>.lua with the KEYS they use in the header, and no Redis TIME', () => {
    const files = readdirSync(LUA_DIR).filter((f) => /^[a-z]+-\d+\.lua$/.test(f));
    expect(files.length).toBeGreaterThanOrEqual(16);
    for (const file of files) {
      const lua = readFileSync(join(LUA_DIR, file), 'utf8');
      const numKeys = Number(file.match(/-(\d+)\.lua$/)?.[1]);
      const header = lua.slice(0, lua.indexOf(']]'));
      const named = [...header.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1]));
      expect(Math.max(...named), file).toBe(numKeys);
      expect(header, file).toMatch(/ARGV\[1\] prefix/);
      expect(header, file).toMatch(/Returns/);
      expect(lua, file).not.toMatch(/'TIME'/i);
    }
  });
});

async function waitFor(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
