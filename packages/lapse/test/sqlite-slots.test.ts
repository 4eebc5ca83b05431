import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SqliteBackend, sqlite } from '../src/backends/sqlite/backend.js';
import { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION } from '../src/backends/sqlite/schema.js';
import { HOME_SLOT_SQL, homeSlot } from '../src/backends/sqlite/slot.js';
import { createStore } from '../src/core/store.js';
import { silentLogger } from '../src/util/logger.js';
import { formatToken, hashSecret } from '../src/core/token.js';
import { sessionRecord } from './fixtures/sqlite-record.js';
import { tempDir } from '../../../test/helpers/tmp.js';

/**
 * Sessions live at a slot derived from their id (see slot.ts). Real collisions of the 52-bit
 * hash cannot be found in a test, so these tests make one by hand: they move a row onto the
 * home slot of an id that comes next, with plain SQL on the same file.
 */
let tmp: ReturnType<typeof tempDir>;
let path: string;
let b: SqliteBackend;

beforeEach(() => {
  tmp = tempDir('lapse-slots-');
  path = join(tmp.dir, 'lapse.db');
  b = sqlite({ path, readCache: 0 });
});

afterEach(async () => {
  await b.close();
  tmp.cleanup();
});

const rec = (id: string, t = 0) => sessionRecord(id, t, { data: JSON.stringify({ id }), userId: 'u1' });
const slotOf = (id: string) => b.db.prepare('SELECT slot FROM lapse_sessions WHERE id = ?').pluck().get(id) as number;
/** Moves session `id` onto slot `to`: what a collision would have done. */
const move = (id: string, to: number) => b.db.prepare('UPDATE lapse_sessions SET slot = ? WHERE id = ?').run(to, id);

describe('sqlite slots', () => {
  it('the home slot is a stable 52-bit hash of the id', () => {
    // Pinned values: files in the field hold rows at these slots.
    expect(homeSlot('a')).toBe(homeSlot('a'));
    expect([homeSlot(''), homeSlot('a'), homeSlot('AAAAAAAAAAAAAAAAAAAAAA')]).toEqual(PINNED);
    const slots = Array.from({ length: 20_000 }, (_, i) => homeSlot(`user:${i}`));
    expect(slots.filter((s) => !Number.isSafeInteger(s) || s < 0 || s >= 2 ** 52)).toEqual([]);
    expect(new Set(slots).size).toBe(20_000);
    // Both halves vary: the top and the bottom 26 bits each take nearly every value seen.
    expect(new Set(slots.map((s) => Math.floor(s / 2 ** 26))).size).toBeGreaterThan(19_990);
    expect(new Set(slots.map((s) => s % 2 ** 26)).size).toBeGreaterThan(19_990);
  });

  it('a session is stored at its home slot and read there', () => {
    b.insert(rec('a'), 0, {});
    expect(slotOf('a')).toBe(homeSlot('a'));
    expect(b.get('a', 0)?.id).toBe('a');
  });

  it('an id whose home slot is taken goes to a negative slot and is still found', () => {
    b.insert(rec('a'), 0, {});
    move('a', homeSlot('b'));
    expect(b.get('a', 0)?.id).toBe('a'); // away from home: found by its index
    b.insert(rec('b'), 0, {});
    expect(slotOf('b')).toBe(-1);
    move('a', homeSlot('c'));
    b.insert(rec('c'), 0, {});
    expect(slotOf('c')).toBe(-2);
    for (const id of ['a', 'b', 'c']) expect(b.get(id, 0)?.data).toBe(JSON.stringify({ id }));
    expect(b.get('d', 0)).toBeNull();
    // Every other path goes by id, wherever the row lives.
    expect(b.update('b', '"new"', 1, {}).data).toBe('"new"');
    expect(b.remove('c', 1, {})?.id).toBe('c');
    expect(b.get('c', 1)).toBeNull();
    expect(b.stats(1)).toMatchObject({ sessions: 2, users: 1 });
  });

  it('rotate moves a session to the home slot of its new id, or away when that is taken', () => {
    b.insert(rec('a'), 0, {});
    b.insert(rec('x'), 0, {});
    expect(b.rotate('a', { id: 'b', secretHash: 'h2' }, 1, {}).id).toBe('b');
    expect(slotOf('b')).toBe(homeSlot('b'));
    move('x', homeSlot('c'));
    b.rotate('b', { id: 'c', secretHash: 'h3' }, 2, {});
    expect(slotOf('c')).toBe(-1);
    expect(b.get('b', 2)).toBeNull();
    expect(b.get('c', 2)).toMatchObject({ id: 'c', secretHash: 'h3', data: JSON.stringify({ id: 'a' }) });
    expect(b.get('x', 2)?.id).toBe('x');
  });

  it('a displaced session validates through the store like any other', async () => {
    const store = createStore({ backend: b, sweepInterval: false, logger: silentLogger });
    const { token, session } = await store.create({ userId: 'u1', data: { n: 1 } });
    move(session.id, -42);
    expect((await store.validate(token))?.data).toEqual({ n: 1 });
    expect(await store.validate(`${session.id}.${'A'.repeat(43)}`)).toBeNull();
  });
});

describe('sqlite schema v1 -> v2', () => {
  const secret = (i: number) => `${String(i).padStart(4, '0')}${'s'.repeat(39)}`;
  const id = (i: number) => `${String(i).padStart(4, '0')}${'i'.repeat(18)}`;

  /** A v1 file, as the previous release of Lapse wrote it, with `n` sessions of two users. */
  function v1File(file: string, n: number, now: number): void {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec(MIGRATIONS[0] as string);
    db.pragma(`application_id = ${APPLICATION_ID}`);
    db.pragma('user_version = 1');
    const insert = db.prepare(`INSERT INTO lapse_sessions (id, secret_hash, user_id, data, created_at, last_accessed_at,
      expires_at, absolute_expires_at, idle_timeout, access_count, version, recency, lock_owner, lock_fence, lock_expires_at, ip, user_agent)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, 3600000, 0, 1, ?, NULL, NULL, NULL, '127.0.0.1', 'v1')`);
    db.transaction(() => {
      for (let i = 0; i < n; i++) {
        insert.run(id(i), hashSecret(secret(i)), `u${i % 2}`, JSON.stringify({ i }), now, now, now + 3_600_000, now + 7_200_000, i + 1);
      }
    })();
    db.close();
  }

  it('moves every session to its home slot; tokens, counts and triggers keep working', async () => {
    await b.close();
    const file = join(tmp.dir, 'v1.db');
    const now = Date.now();
    v1File(file, 500, now);
    b = sqlite({ path: file });
    expect(b.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(b.db.pragma('integrity_check', { simple: true })).toBe('ok');
    const rows = b.db.prepare('SELECT id, slot FROM lapse_sessions').all() as { id: string; slot: number }[];
    expect(rows).toHaveLength(500);
    for (const r of rows) expect(r.slot).toBe(homeSlot(r.id));
    expect(b.stats(now)).toMatchObject({ sessions: 500, users: 2 });
    const store = createStore({ backend: b, sweepInterval: false, logger: silentLogger });
    for (const i of [0, 1, 250, 499]) {
      expect((await store.validate(formatToken(id(i), secret(i))))?.data).toEqual({ i });
    }
    expect(await store.validate(formatToken(id(3), secret(4)))).toBeNull();
    expect((await store.listUser('u1')).map((s) => s.id)[0]).toBe(id(499)); // recency kept
    // The counting triggers are back on the new table.
    expect(await store.revokeUser('u0')).toBe(250);
    await store.create({ userId: 'u2' });
    expect(b.stats(now)).toMatchObject({ sessions: 251, users: 2 });
  });

  it('a process that finds the file locked past busyTimeout while opening gets LAPSE_BACKEND_UNAVAILABLE', async () => {
    await b.close();
    const file = join(tmp.dir, 'v1.db');
    v1File(file, 10, Date.now());
    const holder = new Database(file);
    holder.exec('BEGIN IMMEDIATE');
    try {
      const err = (() => {
        try {
          sqlite({ path: file, busyTimeout: 50 });
        } catch (e) {
          return e as { code?: string; message: string };
        }
      })();
      expect(err?.code).toBe('LAPSE_BACKEND_UNAVAILABLE');
      expect(err?.message).toContain(file);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    b = sqlite({ path: file }); // and once the lock is free, it opens and migrates
    expect(b.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(b.count(Date.now())).toBe(10);
  });

  it('a session whose home slot is taken during the move gets a negative slot, and none is lost', () => {
    // The migration's SQL on its own, with a hash that sends two ids to one slot.
    const db = new Database(':memory:');
    db.exec(MIGRATIONS[0] as string);
    db.function(HOME_SLOT_SQL, { deterministic: true }, (s: string) => (s === 'c' ? 3 : 1));
    const insert = db.prepare(`INSERT INTO lapse_sessions VALUES (?, 'h', 'u', '{}', 0, 0, 9, 9, 9, 0, 1, ?, NULL, NULL, NULL, NULL, NULL)`);
    for (const [i, id] of ['a', 'b', 'c'].entries()) insert.run(id, i);
    db.exec(MIGRATIONS[1] as string);
    const slots = new Map((db.prepare('SELECT slot, id FROM lapse_sessions').raw().all() as [number, string][]));
    expect([...slots.keys()].sort((x, y) => x - y)).toEqual([-1, 1, 3]);
    expect(slots.get(3)).toBe('c');
    expect([slots.get(1), slots.get(-1)].sort()).toEqual(['a', 'b']);
    expect(db.prepare("SELECT value FROM lapse_meta WHERE key = 'sessions'").pluck().get()).toBe(3);
    db.close();
  });
});

const PINNED = [3012557719345215, 466240631898459, 3239085828420782];
