import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SqliteBackend, sqlite } from '../src/backends/sqlite/backend.js';
import { ReadCache } from '../src/backends/sqlite/read-cache.js';
import { APPLICATION_ID, MIGRATIONS, READABLE_BY, SCHEMA_VERSION } from '../src/backends/sqlite/schema.js';
import { ManualClock } from '../src/core/clock.js';
import type { ParsedSlot } from '../src/core/parsed-data.js';
import { createStore } from '../src/core/store.js';
import { isLapseError, LapseError } from '../src/core/errors.js';
import type { SessionRecord } from '../src/core/session.js';
import { sessionRecord } from './fixtures/sqlite-record.js';
import { tempDir } from '../../../test/helpers/tmp.js';

/**
 * A record's fields, less the read path's own slot for its parsed data (`parsedData`: null on
 * records the read path builds, undefined on the write paths'; see fromTuple).
 */
function fields(rec: SessionRecord | null): SessionRecord | null {
  if (rec === null) return null;
  const { parsedData: _, ...rest } = rec as SessionRecord & ParsedSlot;
  return rest;
}

const IDLE = 1_000;
const ABS = 10_000;

/** A record created at `t` with the test timeouts. */
function rec(id: string, t: number, userId: string | null = null, extra: Partial<SessionRecord> = {}): SessionRecord {
  return sessionRecord(id, t, {
    idle: IDLE,
    absolute: ABS,
    userId,
    secretHash: `hash-${id}`,
    data: JSON.stringify({ id }),
    ip: '127.0.0.1',
    userAgent: 'vitest',
    ...extra,
  });
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isLapseError(err) ? err.code : `not a LapseError: ${String(err)}`;
  }
  return undefined;
}

let tmp: ReturnType<typeof tempDir>;
let path: string;
let b: SqliteBackend;

beforeEach(() => {
  tmp = tempDir('lapse-sqlite-');
  path = join(tmp.dir, 'lapse.db');
  b = sqlite({ path });
});

afterEach(async () => {
  await b.close();
  tmp.cleanup();
});

describe('sqlite backend: records', () => {
  it('inserts and reads back every field', async () => {
    const r = rec('a', 0, 'u1');
    const { record, ended } = b.insert(r, 0, {});
    expect(ended).toEqual([]);
    expect(record).toEqual(r);
    expect(fields(b.get('a', 0))).toEqual(r);
    expect(b.get('missing', 0)).toBeNull();
  });

  it('refuses a duplicate live id without replace', async () => {
    b.insert(rec('a', 0), 0, {});
    expect(code(() => b.insert(rec('a', 5), 5, {}))).toBe('LAPSE_INVALID_INPUT');
  });

  it('never returns an expired row, before any sweep', async () => {
    b.insert(rec('a', 0), 0, {});
    expect(b.get('a', IDLE - 1)).not.toBeNull();
    expect(b.get('a', IDLE)).toBeNull();
    expect(await b.touch('a', IDLE, 1, IDLE)).toBeNull();
    expect(b.remove('a', IDLE, {})).toBeNull();
    expect(code(() => b.update('a', '1', IDLE, {}))).toBe('LAPSE_NOT_FOUND');
    expect(b.scan(null, 10, IDLE)).toEqual([]);
    expect(b.count(IDLE)).toBe(0);
    expect(b.stats(IDLE).sessions).toBe(1); // stored until the sweep
  });

  it('an expired row with the same id is ended and replaced by a fresh insert', async () => {
    b.insert(rec('a', 0, 'u1', { data: '"old"' }), 0, {});
    const { record, ended } = b.insert(rec('a', 2_000, 'u1', { data: '"new"' }), 2_000, {});
    expect(ended).toEqual([{ id: 'a', userId: 'u1', reason: 'idle' }]);
    expect(record.data).toBe('"new"');
    expect(b.stats(2_000)).toMatchObject({ sessions: 1, users: 1 });
  });

  it('replace keeps createdAt, the absolute cap, accessCount and lease; bumps version', async () => {
    b.insert(rec('a', 0, 'u1'), 0, {});
    await b.touch('a', 100, 3, 100);
    const lease = b.lock('a', 'me', 5_000, 100);
    const next = rec('a', 500, 'u2', { data: '"new"', createdAt: 500, absoluteExpiresAt: 99_999, accessCount: 0 });
    expect(code(() => b.insert(next, 500, {}, { replace: true }))).toBe('LAPSE_LOCKED');
    const { record } = b.insert(next, 500, {}, { replace: true, fence: lease.fence });
    expect(record).toMatchObject({
      createdAt: 0,
      absoluteExpiresAt: ABS,
      accessCount: 3,
      version: 2,
      data: '"new"',
      userId: 'u2',
      lastAccessedAt: 500,
      expiresAt: 500 + IDLE,
      lock: lease,
    });
    expect(fields(b.get('a', 500))).toEqual(fields(record));
    expect(b.stats(500)).toMatchObject({ sessions: 1, users: 1 });
    expect(b.listUser('u1', 500)).toEqual([]);
    expect(b.listUser('u2', 500).map((r) => r.id)).toEqual(['a']);
  });

  it('touch: lastAccessedAt = max(old, at), expiry slides but never past the absolute cap', async () => {
    b.insert(rec('a', 0), 0, {});
    const t1 = await b.touch('a', 800, 2, 800);
    expect(t1).toMatchObject({ lastAccessedAt: 800, expiresAt: 800 + IDLE, accessCount: 2 });
    const t2 = await b.touch('a', 500, 1, 900); // a late, older access
    expect(t2).toMatchObject({ lastAccessedAt: 800, expiresAt: 800 + IDLE, accessCount: 3 });
    let t = 800;
    while (t < ABS) {
      t += 900;
      await b.touch('a', t, 1, t);
    }
    expect(b.get('a', ABS - 1)?.expiresAt).toBe(ABS);
    expect(b.get('a', ABS)).toBeNull();
  });

  it('touches queued together are written together, each with its own result', async () => {
    for (const id of ['a', 'b', 'c']) b.insert(rec(id, 0), 0, {});
    const results = await Promise.all([
      b.touch('a', 10, 1, 10),
      b.touch('b', 20, 2, 20),
      b.touch('a', 30, 1, 30),
      b.touch('gone', 30, 1, 30),
      ...Array.from({ length: 1_200 }, () => b.touch('c', 40, 1, 40)),
    ]);
    expect(results[0]).toMatchObject({ id: 'a', lastAccessedAt: 10, accessCount: 1 });
    expect(results[1]).toMatchObject({ id: 'b', lastAccessedAt: 20, accessCount: 2 });
    expect(results[2]).toMatchObject({ id: 'a', lastAccessedAt: 30, accessCount: 2 });
    expect(results[3]).toBeNull();
    expect(results.at(-1)).toMatchObject({ id: 'c', accessCount: 1_200 });
    expect(b.get('c', 40)?.accessCount).toBe(1_200);
  });

  it('touches still queued at close are written before the file closes', async () => {
    b.insert(rec('a', 0), 0, {});
    const pending = b.touch('a', 50, 4, 50);
    await b.close();
    expect(await pending).toMatchObject({ accessCount: 4 });
    await expect(b.touch('a', 60, 1, 60)).rejects.toMatchObject({ code: 'LAPSE_CLOSED' });
    b = sqlite({ path });
    expect(b.get('a', 60)?.lastAccessedAt).toBe(50);
  });

  it('update: version check (CAS) and lease fencing, nothing written on refusal', async () => {
    b.insert(rec('a', 0), 0, {});
    expect(b.update('a', '"v2"', 1, { expectedVersion: 1 }).version).toBe(2);
    expect(code(() => b.update('a', '"x"', 2, { expectedVersion: 1 }))).toBe('LAPSE_VERSION_CONFLICT');
    expect(b.get('a', 2)).toMatchObject({ data: '"v2"', version: 2 });
    const lease = b.lock('a', 'me', 100, 3);
    expect(code(() => b.update('a', '"x"', 4, {}))).toBe('LAPSE_LOCKED');
    expect(code(() => b.update('a', '"x"', 4, { fence: lease.fence + 1 }))).toBe('LAPSE_LOCKED');
    expect(b.update('a', '"v3"', 4, { fence: lease.fence, expectedVersion: 2 }).version).toBe(3);
    // Once the lease ran out, anyone may write again.
    expect(b.update('a', '"v4"', 103, {}).version).toBe(4);
    expect(code(() => b.update('nope', '1', 5, {}))).toBe('LAPSE_NOT_FOUND');
  });

  it('the one-statement update and create answer what a read of the file then says', async () => {
    const r = rec('a', 0, 'u1');
    b.insert(r, 0, {});
    const updated = b.update('a', '"v2"', 10, {});
    expect(updated).toEqual({ ...r, data: '"v2"', version: 2 });
    // A second connection (no read cache) reads exactly that row.
    const other = sqlite({ path, readCache: 0, checkpointInterval: false });
    try {
      expect(fields(other.get('a', 10))).toEqual(fields(updated));
    } finally {
      await other.close();
    }
    // Counted by the triggers in the same statement: one session, one user.
    expect(b.stats(10)).toMatchObject({ sessions: 1, users: 1 });
    // A duplicate id fails the INSERT's UNIQUE constraint, which wrote nothing.
    expect(code(() => b.insert(rec('a', 20, 'u2'), 20, {}))).toBe('LAPSE_INVALID_INPUT');
    expect(b.stats(20)).toMatchObject({ sessions: 1, users: 1 });
    expect(b.get('a', 20)).toMatchObject({ userId: 'u1', version: 2 });
  });

  it('grouped: a refused one-statement write fails its caller only, the rest of the group commits', async () => {
    const g = b.grouped();
    await g.insert(rec('a', 0, 'u1'), 0, {});
    const results = await Promise.allSettled([
      g.insert(rec('b', 1, 'u1'), 1, {}),
      g.insert(rec('a', 1, 'u2'), 1, {}),
      g.update('a', '"x"', 1, { expectedVersion: 7 }),
      g.update('a', '"y"', 1, {}),
    ]);
    expect(results.map((x) => x.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect(b.get('a', 2)).toMatchObject({ userId: 'u1', data: '"y"', version: 2 });
    expect(b.stats(2)).toMatchObject({ sessions: 2, users: 1 });
  });

  it('remove: honours the lease unless forced', async () => {
    b.insert(rec('a', 0), 0, {});
    const lease = b.lock('a', 'me', 100, 0);
    expect(code(() => b.remove('a', 1, {}))).toBe('LAPSE_LOCKED');
    expect(b.remove('a', 1, { fence: lease.fence })?.id).toBe('a');
    expect(b.remove('a', 1, {})).toBeNull();
    b.insert(rec('b', 0), 0, {});
    b.lock('b', 'me', 100, 0);
    expect(b.remove('b', 1, { force: true })?.id).toBe('b');
    expect(b.stats(1).sessions).toBe(0);
  });

  it('rotate moves the session to a new id at once and drops the lease', async () => {
    b.insert(rec('a', 0, 'u1'), 0, {});
    b.update('a', '"data"', 10, {});
    const lease = b.lock('a', 'me', 1_000, 10);
    expect(code(() => b.rotate('a', { id: 'b', secretHash: 'h2' }, 20, {}))).toBe('LAPSE_LOCKED');
    const moved = b.rotate('a', { id: 'b', secretHash: 'h2' }, 20, { fence: lease.fence });
    expect(moved).toMatchObject({ id: 'b', secretHash: 'h2', userId: 'u1', data: '"data"', createdAt: 0, version: 2 });
    expect(moved).toMatchObject({ lastAccessedAt: 20, expiresAt: 20 + IDLE, absoluteExpiresAt: ABS, lock: null });
    expect(b.get('a', 20)).toBeNull();
    expect(fields(b.get('b', 20))).toEqual(fields(moved));
    b.insert(rec('c', 20), 20, {});
    expect(code(() => b.rotate('b', { id: 'c', secretHash: 'h3' }, 21, {}))).toBe('LAPSE_INVALID_INPUT');
    expect(code(() => b.rotate('zzz', { id: 'd', secretHash: 'h3' }, 21, {}))).toBe('LAPSE_NOT_FOUND');
    expect(b.stats(21)).toMatchObject({ sessions: 2, users: 1 });
  });

  it('removeUser ends every session of the user except one, leases notwithstanding', async () => {
    b.insert(rec('a', 0, 'u1'), 0, {});
    b.insert(rec('b', 0, 'u1'), 0, {});
    b.insert(rec('c', 500, 'u1'), 500, {});
    b.insert(rec('d', 0, 'u2'), 0, {});
    b.lock('b', 'me', 10_000, 0);
    const ended = b.removeUser('u1', IDLE, 'c');
    // a and b were already idle at 1000: they end as expired, not revoked.
    expect(ended.sort((x, y) => x.id.localeCompare(y.id))).toEqual([
      { id: 'a', userId: 'u1', reason: 'idle' },
      { id: 'b', userId: 'u1', reason: 'idle' },
    ]);
    expect(b.removeUser('u1', IDLE)).toEqual([{ id: 'c', userId: 'u1', reason: 'revoked' }]);
    expect(b.stats(IDLE)).toMatchObject({ sessions: 1, users: 1 });
  });

  it('listUser: live sessions, most recently used first', async () => {
    b.insert(rec('a', 0, 'u1'), 0, {});
    b.insert(rec('b', 0, 'u1'), 0, {});
    b.insert(rec('c', 0, 'u1'), 0, {});
    await b.touch('a', 0, 1, 0); // same millisecond: recency still counts the touch
    expect(b.listUser('u1', 0).map((r) => r.id)).toEqual(['a', 'c', 'b']);
    b.insert(rec('d', 900, 'u1'), 900, {});
    expect(b.listUser('u1', IDLE).map((r) => r.id)).toEqual(['d']);
  });
});

describe('sqlite backend: read cache', () => {
  it('every own write is seen by the next get, even right after a cached read', async () => {
    b.insert(rec('a', 0, 'u1'), 0, {});
    b.insert(rec('b', 0, 'u1'), 0, {});
    const warm = () => expect(b.get('a', 1)).not.toBeNull();
    warm();
    await b.touch('a', 100, 2, 100);
    expect(b.get('a', 100)).toMatchObject({ lastAccessedAt: 100, accessCount: 2 });
    b.update('a', '"v2"', 100, {});
    expect(b.get('a', 100)).toMatchObject({ data: '"v2"', version: 2 });
    const lease = b.lock('a', 'me', 50, 100);
    expect(b.get('a', 100)?.lock).toEqual(lease);
    b.extendLock('a', lease.fence, 500, 110);
    expect(b.get('a', 110)?.lock?.expiresAt).toBe(610);
    b.unlock('a', lease.fence, 120);
    expect(b.get('a', 120)?.lock).toBeNull();
    b.insert(rec('a', 130, 'u1', { data: '"replaced"' }), 130, {}, { replace: true });
    expect(b.get('a', 130)?.data).toBe('"replaced"');
    b.rotate('a', { id: 'a2', secretHash: 'h2' }, 140, {});
    expect(b.get('a', 140)).toBeNull();
    expect(b.get('a2', 140)?.secretHash).toBe('h2');
    b.remove('a2', 150, {});
    expect(b.get('a2', 150)).toBeNull();
    expect(b.get('b', 150)).not.toBeNull();
    b.removeUser('u1', 150);
    expect(b.get('b', 150)).toBeNull();
    b.insert(rec('c', 150), 150, {});
    expect(b.get('c', 150)).not.toBeNull();
    await b.sweep(5_000, 10);
    b.insert(rec('c', 5_000), 5_000, {});
    expect(b.get('c', 5_000)?.createdAt).toBe(5_000);
    b.clear();
    expect(b.get('c', 5_000)).toBeNull();
  });

  it('a record read from the file parses its data once, into itself; a write is seen at once through the store', async () => {
    await b.close();
    b = sqlite({ path });
    const store = createStore({ backend: b, clock: new ManualClock(0) });
    try {
      const s = await store.set('k', { n: 1, list: [1, 2] });
      // Every read of the file builds a new record with a slot of its own (parsedData null).
      const read = b.get('k', 0) as SessionRecord & ParsedSlot;
      expect(read.parsedData).toBeNull();
      // With no read cache, records go through the store's parsed-data cache (no slot).
      const uncached = sqlite({ path, readCache: 0, checkpointInterval: false });
      try {
        expect((uncached.get('k', 0) as SessionRecord & ParsedSlot).parsedData).toBeUndefined();
      } finally {
        await uncached.close();
      }
      // Reads of one session: once the read cache keeps its record, the store hands out one
      // parse of it again and again (the same frozen object), with no parse per read.
      const seen: unknown[] = [];
      for (let i = 0; i < 20; i++) seen.push((await store.get('k'))?.data);
      expect(seen.every((d) => JSON.stringify(d) === JSON.stringify({ n: 1, list: [1, 2] }))).toBe(true);
      expect(Object.isFrozen((seen[19] as { list: number[] }).list)).toBe(true);
      expect(seen[19]).toBe(seen[18]);
      expect(s.version).toBe(1);
      // A write makes a new record: the next read has the new data, never the cached parse.
      await store.update('k', { n: 2 });
      expect((await store.get('k'))?.data).toEqual({ n: 2 });
      await store.set('k', { n: 3 });
      for (let i = 0; i < 10; i++) expect((await store.get('k'))?.data).toEqual({ n: 3 });
    } finally {
      await store.close();
    }
  });

  it('evictions made by an insert are forgotten too', async () => {
    b.insert(rec('a', 0, 'u1'), 0, {});
    expect(b.get('a', 0)).not.toBeNull();
    b.insert(rec('b', 1, 'u1'), 1, { maxSessionsPerUser: 1 });
    expect(b.get('a', 1)).toBeNull();
  });

  it('a cached record still expires on time', async () => {
    b.insert(rec('a', 0), 0, {});
    expect(b.get('a', IDLE - 1)).not.toBeNull();
    expect(b.get('a', IDLE)).toBeNull();
  });

  it('a commit by another connection empties it (another process, or plain SQL)', async () => {
    // Looking before every hit: each foreign commit is seen by the very next read.
    await b.close();
    b = sqlite({ path, readCacheRecheck: 0 });
    const other = sqlite({ path });
    const raw = new Database(path);
    try {
      b.insert(rec('a', 0, 'u1'), 0, {});
      expect(b.get('a', 1)?.version).toBe(1);
      other.update('a', '"theirs"', 1, {});
      expect(b.get('a', 1)).toMatchObject({ data: '"theirs"', version: 2 });
      other.lock('a', 'them', 100, 1);
      expect(b.get('a', 2)?.lock?.owner).toBe('them');
      raw.prepare('UPDATE lapse_sessions SET data = ? WHERE id = ?').run('"raw"', 'a');
      expect(b.get('a', 2)?.data).toBe('"raw"');
      other.removeUser('u1', 3);
      expect(b.get('a', 3)).toBeNull();
    } finally {
      raw.close();
      await other.close();
    }
  });

  it('with the default recheck, a foreign commit reaches cached reads within 1 ms', async () => {
    await b.close();
    const clock = new ManualClock(0);
    b = sqlite({ path, clock });
    const other = sqlite({ path });
    try {
      b.insert(rec('a', 0, 'u1'), 0, {});
      expect(b.get('a', 1)?.version).toBe(1); // cached, data_version looked at
      other.update('a', '"theirs"', 1, {});
      // Once the window has passed on the backend's clock, the very next read sees the commit.
      await clock.advance(2);
      expect(b.get('a', 1)).toMatchObject({ data: '"theirs"', version: 2 });
      // Own writes never wait for the window.
      b.update('a', '"mine"', 2, {});
      expect(b.get('a', 2)?.data).toBe('"mine"');
    } finally {
      await other.close();
    }
    expect(catchErr(() => sqlite({ path, readCacheRecheck: -1 })).code).toBe('LAPSE_INVALID_OPTION');
  });

  it('the cache holds one look at data_version for the recheck window only', () => {
    let version = 1;
    let looks = 0;
    let t = 0;
    const look = () => {
      looks++;
      return version;
    };
    const cache = new ReadCache(4, look, 1, () => t);
    cache.set(rec('r0', 0));
    looks = 0;
    cache.sync();
    cache.sync();
    expect(looks).toBe(1);
    version = 2; // another connection committed
    t = 0.5;
    cache.sync();
    expect(cache.has('r0')).toBe(true); // still inside the window
    t = 1;
    cache.sync();
    expect(looks).toBe(2);
    expect(cache.size).toBe(0);
  });

  it('the cache itself: bounded, keeps what is used, forgets all on a new data_version', async () => {
    let version = 1;
    const cache = new ReadCache(4, () => version);
    for (let i = 0; i < 10; i++) {
      cache.set(rec(`r${i}`, i));
      expect(cache.get('r0')?.id).toBe('r0'); // used every round: never evicted
      expect(cache.size).toBeLessThanOrEqual(4);
    }
    expect(cache.has('r1')).toBe(false);
    expect(cache.has('r9')).toBe(true);
    cache.delete('r9');
    expect(cache.get('r9')).toBeUndefined();
    cache.sync();
    expect(cache.has('r0')).toBe(true);
    version = 2;
    cache.sync();
    expect(cache.size).toBe(0);
  });

  it('can be turned off', async () => {
    const plain = sqlite({ path, readCache: 0 });
    try {
      b.insert(rec('a', 0), 0, {});
      expect(plain.get('a', 0)?.id).toBe('a');
      b.update('a', '"x"', 0, {});
      expect(plain.get('a', 0)?.data).toBe('"x"');
    } finally {
      await plain.close();
    }
    expect(catchErr(() => sqlite({ path, readCache: -1 })).code).toBe('LAPSE_INVALID_OPTION');
  });
});

describe('sqlite backend: leases', () => {
  it('fencing numbers grow with every grant, are refused while held, and survive a reopen', async () => {
    b.insert(rec('a', 0), 0, {});
    b.insert(rec('b', 0), 0, {});
    const l1 = b.lock('a', 'one', 100, 0);
    expect(code(() => b.lock('a', 'two', 100, 50))).toBe('LAPSE_LOCKED');
    const l2 = b.lock('b', 'two', 100, 50);
    expect(l2.fence).toBeGreaterThan(l1.fence);
    expect(b.get('a', 50)?.lock).toEqual(l1);
    expect(b.stats(50).locked).toBe(2);
    // The first lease ran out: a new grant gets a larger number.
    const l3 = b.lock('a', 'two', 100, 100);
    expect(l3).toEqual({ owner: 'two', fence: l2.fence + 1, expiresAt: 200 });
    await b.close();
    b = sqlite({ path });
    expect(b.unlock('a', l3.fence, 150)).toBe(true);
    expect(b.lock('a', 'three', 100, 150).fence).toBe(l3.fence + 1);
  });

  it('extendLock only extends the lease in force; unlock reports whether it was in force', async () => {
    b.insert(rec('a', 0), 0, {});
    const l = b.lock('a', 'me', 100, 0);
    expect(b.extendLock('a', l.fence, 300, 50)).toEqual({ owner: 'me', fence: l.fence, expiresAt: 350 });
    expect(code(() => b.extendLock('a', l.fence + 1, 300, 60))).toBe('LAPSE_LOCKED');
    expect(code(() => b.extendLock('a', l.fence, 300, 350))).toBe('LAPSE_LOCKED');
    expect(b.unlock('a', l.fence + 1, 100)).toBe(false);
    expect(b.unlock('a', l.fence, 400)).toBe(false); // ran out at 350
    expect(b.get('a', 400)?.lock).toBeNull();
    const l2 = b.lock('a', 'me', 100, 400);
    expect(b.stats(450).locked).toBe(1);
    expect(b.unlock('a', l2.fence, 450)).toBe(true);
    expect(b.unlock('a', l2.fence, 450)).toBe(false);
    expect(b.stats(450).locked).toBe(0);
    expect(code(() => b.lock('nope', 'me', 100, 0))).toBe('LAPSE_NOT_FOUND');
  });
});

describe('sqlite backend: caps and eviction', () => {
  it('per-user cap: the user least recently used session goes first', async () => {
    b.insert(rec('a', 0, 'u1'), 0, {});
    b.insert(rec('b', 10, 'u1'), 10, {});
    b.insert(rec('other', 15, 'u2'), 15, {});
    await b.touch('a', 20, 1, 20);
    const { ended } = b.insert(rec('c', 30, 'u1'), 30, { maxSessionsPerUser: 2 });
    expect(ended).toEqual([{ id: 'b', userId: 'u1', reason: 'evicted' }]);
    expect(b.listUser('u1', 30).map((r) => r.id)).toEqual(['c', 'a']);
  });

  it('global cap: an expired session goes before any live one, else the least recently used', async () => {
    b.insert(rec('old', 0, 'u1', { expiresAt: 100 }), 0, {});
    b.insert(rec('a', 200, 'u2'), 200, {});
    b.insert(rec('b', 300, 'u3'), 300, {});
    await b.touch('a', 400, 1, 400);
    let r = b.insert(rec('c', 500, 'u4'), 500, { maxSessions: 3 });
    expect(r.ended).toEqual([{ id: 'old', userId: 'u1', reason: 'idle' }]);
    r = b.insert(rec('d', 600, 'u5'), 600, { maxSessions: 3 });
    expect(r.ended).toEqual([{ id: 'b', userId: 'u3', reason: 'evicted' }]);
    r = b.insert(rec('e', 600, null), 600, { maxSessions: 2 });
    expect(r.ended.map((e) => e.id)).toEqual(['a', 'c']);
    expect(b.stats(600)).toEqual({ sessions: 2, users: 1, locked: 0 });
  });

  it('caps combine: the per-user cap first, then the global one', async () => {
    b.insert(rec('a', 0, 'u1'), 0, {});
    b.insert(rec('x', 5, 'u2'), 5, {});
    const { ended } = b.insert(rec('b', 10, 'u1'), 10, { maxSessions: 2, maxSessionsPerUser: 1 });
    expect(ended).toEqual([{ id: 'a', userId: 'u1', reason: 'evicted' }]);
    expect(b.count(10)).toBe(2);
  });
});

describe('sqlite backend: sweep, counts, scan', () => {
  it('sweeps in bounded batches, soonest-expired first, with reasons', async () => {
    for (let i = 0; i < 25; i++) b.insert(rec(`s${String(i).padStart(2, '0')}`, i * 10, `u${i % 3}`), i * 10, {});
    // s00 hits its absolute cap before its idle end.
    b.insert(rec('abs', 0, null, { absoluteExpiresAt: 50, expiresAt: 50 }), 0, {});
    b.insert(rec('live', 5_000, 'u9'), 5_000, {});
    const now = 2_000;
    const first = await b.sweep(now, 10);
    expect(first).toHaveLength(10);
    expect(first[0]).toEqual({ id: 'abs', userId: null, reason: 'absolute' });
    expect(first.slice(1).map((e) => e.id)).toEqual(['s00', 's01', 's02', 's03', 's04', 's05', 's06', 's07', 's08']);
    expect(first.slice(1).every((e) => e.reason === 'idle')).toBe(true);
    expect(await b.sweep(now, 10)).toHaveLength(10);
    expect(await b.sweep(now, 10)).toHaveLength(6);
    expect(await b.sweep(now, 10)).toEqual([]);
    expect(b.stats(now)).toEqual({ sessions: 1, users: 1, locked: 0 });
    expect(b.get('live', now)).not.toBeNull();
  });

  it('a large sweep runs in several transactions yet returns exactly `limit`, in expiry order', async () => {
    b.db.transaction(() => {
      for (let i = 0; i < 3_000; i++) b.insert(rec(`s${i}`, (i * 7919) % 3_000, `u${i % 50}`), 0, {});
    })();
    b.insert(rec('live', 9_000, 'u1'), 9_000, {});
    const now = 5_000;
    const first = await b.sweep(now, 2_500);
    expect(first).toHaveLength(2_500);
    const expiries = first.map((e) => Number(e.id.slice(1)) * 7919 % 3_000);
    expect(expiries).toEqual([...expiries].sort((x, y) => x - y));
    expect(Math.max(...expiries)).toBeLessThan(2_500);
    expect(await b.sweep(now, 2_500)).toHaveLength(500);
    expect(b.stats(now)).toEqual({ sessions: 1, users: 1, locked: 0 });
  });

  it('a sweep past the checkpoint pacing point pauses for the worker and still removes everything', async () => {
    b.db.exec(`
      WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 12000)
      INSERT INTO lapse_sessions (id, secret_hash, user_id, data, created_at, last_accessed_at, expires_at,
        absolute_expires_at, idle_timeout, access_count, version, recency)
      SELECT 'x' || x, 'h', 'u' || (x % 100), '{}', 0, 0, x, 100000, 1000, 0, 1, x FROM n`);
    expect(b.stats(0)).toEqual({ sessions: 12_000, users: 100, locked: 0 });
    const ended = await b.sweep(20_000, 20_000);
    expect(ended).toHaveLength(12_000);
    expect(ended[0]?.id).toBe('x1');
    expect(ended.at(-1)?.id).toBe('x12000');
    expect(b.stats(20_000)).toEqual({ sessions: 0, users: 0, locked: 0 });
    expect(b.db.pragma('integrity_check', { simple: true })).toBe('ok');
  });

  it('count excludes expired rows; stats count rows and distinct users without a scan', async () => {
    b.insert(rec('a', 0, 'u1'), 0, {});
    b.insert(rec('b', 500, 'u1'), 500, {});
    b.insert(rec('c', 500, 'u2'), 500, {});
    b.insert(rec('d', 500, null), 500, {});
    expect(b.count(600)).toBe(4);
    expect(b.count(IDLE)).toBe(3);
    expect(b.stats(IDLE)).toEqual({ sessions: 4, users: 2, locked: 0 });
    b.remove('c', IDLE, {});
    expect(b.stats(IDLE)).toEqual({ sessions: 3, users: 1, locked: 0 });
    b.clear();
    expect(b.stats(IDLE)).toEqual({ sessions: 0, users: 0, locked: 0 });
    expect(b.count(IDLE)).toBe(0);
  });

  it('scan pages through live sessions in id order', async () => {
    for (const id of ['e', 'a', 'd', 'b', 'c']) b.insert(rec(id, id === 'c' ? -900 : 0), 0, {});
    const now = 200;
    expect(b.scan(null, 2, now).map((r) => r.id)).toEqual(['a', 'b']);
    expect(b.scan('b', 2, now).map((r) => r.id)).toEqual(['d', 'e']); // c expired at 100
    expect(b.scan('e', 2, now)).toEqual([]);
  });
});

describe('sqlite backend: the file', () => {
  it('persists across reopen, with the schema version and application id set', async () => {
    b.insert(rec('a', 0, 'u1'), 0, {});
    await b.close();
    b = sqlite({ path });
    expect(b.get('a', 0)?.userId).toBe('u1');
    expect(b.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(b.db.pragma('application_id', { simple: true })).toBe(APPLICATION_ID);
    expect(b.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(b.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(b.db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    expect(MIGRATIONS).toHaveLength(SCHEMA_VERSION);
  });

  it('two connections on one file open it together and see each other', async () => {
    const other = sqlite({ path });
    try {
      b.insert(rec('a', 0), 0, {});
      expect(other.get('a', 0)?.id).toBe('a');
      expect(other.lock('a', 'x', 100, 0).fence).toBe(1);
      expect(code(() => b.lock('a', 'y', 100, 1))).toBe('LAPSE_LOCKED');
    } finally {
      await other.close();
    }
  });

  it('refuses a file that is not SQLite, naming it and leaving it untouched', async () => {
    const file = join(tmp.dir, 'notes.txt');
    writeFileSync(file, 'these are not the sessions you are looking for\n'.repeat(20));
    const before = readFileSync(file);
    const err = catchErr(() => sqlite({ path: file }));
    expect(err.code).toBe('LAPSE_INVALID_OPTION');
    expect(err.message).toContain(file);
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it('refuses an SQLite database of another application, untouched', async () => {
    const file = join(tmp.dir, 'app.db');
    const other = new Database(file);
    other.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada')");
    await other.close();
    const before = readFileSync(file);
    const err = catchErr(() => sqlite({ path: file }));
    expect(err.code).toBe('LAPSE_INVALID_OPTION');
    expect(err.message).toContain(file);
    expect(err.message).toContain('users');
    expect(readFileSync(file).equals(before)).toBe(true);
    const again = new Database(file);
    expect(again.pragma('journal_mode', { simple: true })).toBe('delete');
    expect(again.prepare("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'lapse%'").pluck().get()).toBe(0);
    again.close();
  });

  it('refuses a file marked by another application id or an unknown user_version', async () => {
    const a = join(tmp.dir, 'a.db');
    const da = new Database(a);
    da.pragma('application_id = 1234');
    da.close();
    expect(catchErr(() => sqlite({ path: a })).message).toContain('application_id 1234');
    const v = join(tmp.dir, 'v.db');
    const dv = new Database(v);
    dv.pragma('user_version = 3');
    dv.close();
    expect(catchErr(() => sqlite({ path: v })).code).toBe('LAPSE_INVALID_OPTION');
  });

  it('refuses a Lapse database from a newer schema version, untouched, unless it says this version may use it', async () => {
    b.insert(rec('a', 0), 0, {});
    b.db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    // What a newer migration that changes this version's statements writes: readable by itself only.
    b.db.prepare("UPDATE lapse_meta SET value = ? WHERE key = 'readable_by'").run(SCHEMA_VERSION + 1);
    await b.close();
    const before = readFileSync(path);
    const err = catchErr(() => sqlite({ path }));
    expect(err.code).toBe('LAPSE_INVALID_OPTION');
    expect(err.message).toContain(path);
    expect(err.message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    expect(readFileSync(path).equals(before)).toBe(true);
    // No marker at all (a file of a Lapse from before the marker, or one that removed it): refused too.
    const raw = new Database(path);
    raw.prepare("DELETE FROM lapse_meta WHERE key = 'readable_by'").run();
    raw.close();
    expect(catchErr(() => sqlite({ path })).message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    // A marker that is not a whole number (a hand-edited file): refused the same way.
    for (const bad of ["'two'", '1.5', "x'02'"]) {
      const edit = new Database(path);
      edit.prepare(`INSERT OR REPLACE INTO lapse_meta (key, value) VALUES ('readable_by', ${bad})`).run();
      edit.close();
      expect(catchErr(() => sqlite({ path })).message, bad).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    }
    // Let afterEach close something: put the version back and reopen.
    const fix = new Database(path);
    fix.pragma(`user_version = ${SCHEMA_VERSION}`);
    fix.close();
    b = sqlite({ path });
    expect(b.get('a', 0)?.id).toBe('a');
  });

  it('a new file is marked readable by the versions whose statements this schema keeps', () => {
    expect(READABLE_BY).toBeLessThanOrEqual(SCHEMA_VERSION);
    expect(b.db.prepare("SELECT value FROM lapse_meta WHERE key = 'readable_by'").pluck().get()).toBe(READABLE_BY);
  });

  it('rolling deploy: a newer, compatible migration keeps this version running, and a new process of it opens the file', async () => {
    const clock = new ManualClock(1_000_000);
    const running = createStore({ backend: b, clock });
    const before = await running.create({ userId: 'ada', data: { n: 1 } });
    // A newer Lapse migrates the file in place while this one runs: an additive change that
    // says this version's code may go on using it.
    const newer = new Database(path);
    newer.exec(`
      BEGIN IMMEDIATE;
      CREATE TABLE lapse_future (k TEXT PRIMARY KEY) WITHOUT ROWID;
      CREATE INDEX lapse_future_ip ON lapse_sessions (ip);
      INSERT INTO lapse_meta (key, value) VALUES ('readable_by', ${SCHEMA_VERSION}) ON CONFLICT (key) DO UPDATE SET value = excluded.value;
      PRAGMA user_version = ${SCHEMA_VERSION + 1};
      COMMIT;`);
    newer.close();
    // The running process reads and writes on, across the schema change.
    expect((await running.validate(before.token))?.data).toEqual({ n: 1 });
    await running.update(before.session.id, { n: 2 });
    const during = await running.create({ userId: 'ada' });
    // A process of this version started now (a node not yet upgraded, restarting) opens it too.
    const fresh = sqlite({ path });
    try {
      const again = createStore({ backend: fresh, clock });
      expect((await again.validate(before.token))?.data).toEqual({ n: 2 });
      expect((await again.validate(during.token))?.userId).toBe('ada');
      const after = await again.create({ userId: 'bob' });
      expect((await running.validate(after.token))?.userId).toBe('bob');
      expect((await again.listUser('ada')).map((s) => s.id).sort()).toEqual([before.session.id, during.session.id].sort());
      expect(await again.stats()).toMatchObject({ sessions: 3, users: 2 });
      // It never downgrades the file nor rewrites the marker.
      expect(fresh.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 1);
      expect(fresh.db.prepare("SELECT value FROM lapse_meta WHERE key = 'readable_by'").pluck().get()).toBe(SCHEMA_VERSION);
      expect(fresh.db.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'lapse_future'").pluck().get()).toBe(1);
    } finally {
      await fresh.close();
    }
  });

  it('accepts an empty existing file as a new database', async () => {
    const file = join(tmp.dir, 'empty.db');
    writeFileSync(file, '');
    const e = sqlite({ path: file });
    try {
      e.insert(rec('a', 0), 0, {});
      expect(e.count(0)).toBe(1);
    } finally {
      await e.close();
    }
  });

  it('a worker thread checkpoints the WAL into the file while the connection stays open', async () => {
    const pad = 'x'.repeat(2_000);
    // One commit of ~4 MB of pages: far below the 40 MB backstop, so only the worker can copy them.
    b.db.transaction(() => {
      for (let i = 0; i < 2_000; i++) b.insert(rec(`s${i}`, 0, `u${i % 10}`, { data: JSON.stringify(pad) }), 0, {});
    })();
    let size = statSync(path).size;
    for (let i = 0; i < 200 && size < 4_000_000; i++) {
      await new Promise((r) => setTimeout(r, 50));
      size = statSync(path).size;
    }
    expect(size).toBeGreaterThanOrEqual(4_000_000);
    await b.close();
    // Both connections closed cleanly: the last one removed the WAL.
    expect(existsSync(`${path}-wal`)).toBe(false);
    b = sqlite({ path, checkpointInterval: false });
    expect(b.count(0)).toBe(2_000);
  });

  it('checks its options', async () => {
    expect(catchErr(() => sqlite({} as never)).code).toBe('LAPSE_INVALID_OPTION');
    expect(catchErr(() => sqlite({ path, busyTimeout: 'soon' })).code).toBe('LAPSE_INVALID_OPTION');
    expect(catchErr(() => sqlite({ path, synchronous: 'off' as never })).code).toBe('LAPSE_INVALID_OPTION');
    expect(catchErr(() => sqlite({ path, checkpointInterval: 0 })).code).toBe('LAPSE_INVALID_OPTION');
    expect(catchErr(() => sqlite({ path, cacheSizeMiB: -1 })).code).toBe('LAPSE_INVALID_OPTION');
  });
});

describe('sqlite backend: failures surface as errors, never as "no session"', () => {
  it('a write blocked past the busy timeout throws SQLITE_BUSY', async () => {
    const short = sqlite({ path, busyTimeout: 50 });
    const holder = new Database(path);
    try {
      b.insert(rec('a', 0), 0, {});
      holder.exec('BEGIN IMMEDIATE');
      let thrown: unknown;
      try {
        await short.touch('a', 1, 1, 1);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(Error);
      expect(thrown).not.toBeInstanceOf(LapseError);
      expect((thrown as { code?: string }).code).toBe('SQLITE_BUSY');
      expect(() => short.update('a', '"x"', 1, {})).toThrow(expect.objectContaining({ code: 'SQLITE_BUSY' }));
      // Readers are not blocked by a writer in WAL mode.
      expect(short.get('a', 1)?.data).toBe(JSON.stringify({ id: 'a' }));
      holder.exec('ROLLBACK');
      expect((await short.touch('a', 1, 1, 1))?.accessCount).toBe(1);
    } finally {
      holder.close();
      await short.close();
    }
  });

  it('after close, reads throw and ping says closed; close twice is fine', async () => {
    b.insert(rec('a', 0), 0, {});
    await b.close();
    expect(() => b.get('a', 0)).toThrow();
    expect(code(() => b.ping())).toBe('LAPSE_CLOSED');
    await b.close();
    b = sqlite({ path });
    expect(() => b.ping()).not.toThrow();
  });
});

describe('sqlite backend: job lease', () => {
  it('one holder per key across connections; takes over only after expiry', async () => {
    const clock = new ManualClock(1_000);
    const one = sqlite({ path, clock });
    const two = sqlite({ path, clock });
    try {
      const l1 = one.jobLease();
      const l2 = two.jobLease();
      const t1 = await l1.acquire('job', 100);
      expect(t1).toEqual(expect.any(String));
      expect(await l2.acquire('job', 100)).toBeNull();
      expect(await l2.renew('job', 'wrong', 100)).toBe(false);
      expect(await l1.renew('job', t1 as string, 100)).toBe(true);
      await clock.advance(99);
      expect(await l2.acquire('job', 100)).toBeNull();
      await clock.advance(1);
      const t2 = await l2.acquire('job', 100);
      expect(t2).toEqual(expect.any(String));
      expect(await l1.renew('job', t1 as string, 100)).toBe(false);
      await l1.release('job', t1 as string); // not the holder: no effect
      expect(await l1.acquire('job', 100)).toBeNull();
      await l2.release('job', t2 as string);
      expect(await l1.acquire('job', 100)).toEqual(expect.any(String));
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('prunes expired keys as it goes', async () => {
    const clock = new ManualClock(0);
    const one = sqlite({ path, clock });
    try {
      const lease = one.jobLease();
      for (let i = 0; i < 20; i++) await lease.acquire(`slot-${i}`, 10);
      await clock.advance(10);
      for (let i = 0; i < 3; i++) await lease.acquire(`next-${i}`, 10);
      expect(one.db.prepare('SELECT count(*) FROM lapse_leases').pluck().get()).toBe(3); // 8 + 8 + 4 expired slots pruned, 3 live keys
    } finally {
      await one.close();
    }
  });
});

function catchErr(fn: () => unknown): LapseError {
  try {
    fn();
  } catch (err) {
    if (err instanceof LapseError) return err;
    throw err;
  }
  throw new Error('expected a LapseError');
}
