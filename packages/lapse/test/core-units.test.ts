import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { encodeData } from '../src/core/data.js';
import { parseDuration } from '../src/core/duration.js';
import { isLapseError } from '../src/core/errors.js';
import { createStore } from '../src/core/store.js';
import { constantTimeEqual, formatToken, hashSecret, newId, newSecret, parseToken, verifySecret } from '../src/core/token.js';
import { expiresAtOf, expiryReason, toSession } from '../src/core/session.js';
import { ExpiryQueue } from '../src/util/expiry-queue.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isLapseError(err) ? err.code : 'not a LapseError';
  }
  return undefined;
}

describe('durations', () => {
  it('parses numbers and unit strings', () => {
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('6h')).toBe(21_600_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('1.5s')).toBe(1500);
  });
  it('rejects anything else with LAPSE_INVALID_OPTION', () => {
    for (const bad of ['', 'soon', '5 minutes', '-1s', -5, Number.NaN, Number.POSITIVE_INFINITY, '5w', {}, null]) {
      expect(code(() => parseDuration(bad as never))).toBe('LAPSE_INVALID_OPTION');
    }
  });
});

describe('tokens', () => {
  it('are <id>.<secret> of 16 and 32 random bytes in base64url', () => {
    const id = newId();
    const secret = newSecret();
    expect(Buffer.from(id, 'base64url')).toHaveLength(16);
    expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
    const token = formatToken(id, secret);
    expect(parseToken(token)).toEqual({ id, secret });
    expect(new Set(Array.from({ length: 1000 }, newId)).size).toBe(1000);
  });
  it('verify against the SHA-256 of the secret only', () => {
    const secret = newSecret();
    const hash = hashSecret(secret);
    expect(hash).not.toContain(secret);
    expect(verifySecret(secret, hash)).toBe(true);
    expect(verifySecret(newSecret(), hash)).toBe(false);
    expect(verifySecret(secret, '')).toBe(false);
    expect(verifySecret(secret, 'short')).toBe(false);
  });
  it('constantTimeEqual tells equal strings from different ones, at any length and position', () => {
    // Lengths on both sides of the scratch buffer's 128, each compared in turn (views are cached per length).
    for (const n of [0, 1, 43, 64, 128, 129, 300, 43]) {
      const a = 'x'.repeat(n);
      expect(constantTimeEqual(a, 'x'.repeat(n))).toBe(true);
      for (const at of n === 0 ? [] : [0, n >> 1, n - 1]) {
        expect(constantTimeEqual(a, `${a.slice(0, at)}y${a.slice(at + 1)}`)).toBe(false);
      }
      expect(constantTimeEqual(a, `${a}x`)).toBe(false);
    }
    // Characters above U+00FF count whole: U+0101 is not U+0001, at either length class.
    expect(constantTimeEqual('\u0101', '\u0001')).toBe(false);
    expect(constantTimeEqual(`${'x'.repeat(200)}\u0101`, `${'x'.repeat(200)}\u0001`)).toBe(false);
    expect(constantTimeEqual('\u0101\u{1F600}', '\u0101\u{1F600}')).toBe(true);
    const h = hashSecret(newSecret());
    expect(constantTimeEqual(h, h.slice(0))).toBe(true);
    expect(constantTimeEqual(h, hashSecret(newSecret()))).toBe(false);
  });
  it('parseToken refuses every other shape', () => {
    const good = formatToken(newId(), newSecret());
    for (const bad of [undefined, null, 5, '', good.replace('.', '_'), `${good}=`, good.slice(1), `${good.slice(0, -1)}+`, ` ${good.slice(1)}`]) {
      expect(parseToken(bad)).toBeNull();
    }
  });
});

describe('expiry rule', () => {
  it('is min(lastAccessedAt + idle, absolute) and names its reason', () => {
    expect(expiresAtOf(100, 50, 1000)).toBe(150);
    expect(expiresAtOf(980, 50, 1000)).toBe(1000);
    expect(expiryReason({ expiresAt: 1000, absoluteExpiresAt: 1000 })).toBe('absolute');
    expect(expiryReason({ expiresAt: 150, absoluteExpiresAt: 1000 })).toBe('idle');
  });
  it('status is expired at the instant now >= expiresAt', () => {
    const rec = {
      id: 'a', secretHash: '', userId: null, data: '1', createdAt: 0, lastAccessedAt: 0, expiresAt: 10,
      absoluteExpiresAt: 20, idleTimeout: 10, accessCount: 0, version: 1, lock: null, ip: null, userAgent: null,
    };
    expect(toSession(rec, 9).status).toBe('active');
    expect(toSession(rec, 10).status).toBe('expired');
    expect(toSession({ ...rec, lock: { owner: 'o', fence: 1, expiresAt: 5 } }, 4).status).toBe('locked');
    expect(toSession({ ...rec, lock: { owner: 'o', fence: 1, expiresAt: 5 } }, 5).lock).toBeNull();
  });
});

describe('JSON data', () => {
  it('accepts plain JSON and null-prototype objects', () => {
    expect(encodeData({ a: [1, 'x', null, true, { b: 2.5 }] }, 1000)).toBe('{"a":[1,"x",null,true,{"b":2.5}]}');
    expect(encodeData(Object.assign(Object.create(null), { a: 1 }), 100)).toBe('{"a":1}');
    expect(encodeData('', 10)).toBe('""');
  });
  it('counts bytes, not characters, against the limit', () => {
    expect(code(() => encodeData('é'.repeat(30), 50))).toBe('LAPSE_PAYLOAD_TOO_LARGE');
    expect(encodeData('é'.repeat(20), 50)).toHaveLength(22);
  });
  it('allows the same object twice when it is not a cycle', () => {
    const shared = { x: 1 };
    expect(encodeData({ a: shared, b: shared }, 100)).toBe('{"a":{"x":1},"b":{"x":1}}');
  });
});

describe('store options', () => {
  it('are checked in the constructor', () => {
    expect(code(() => createStore({ idleTimeout: 'soon' }))).toBe('LAPSE_INVALID_OPTION');
    expect(code(() => createStore({ idleTimeout: 0 }))).toBe('LAPSE_INVALID_OPTION');
    expect(code(() => createStore({ maxSessions: 0 }))).toBe('LAPSE_INVALID_OPTION');
    expect(code(() => createStore({ maxSessionsPerUser: 1.5 }))).toBe('LAPSE_INVALID_OPTION');
    expect(code(() => createStore({ sweepInterval: '-1m' }))).toBe('LAPSE_INVALID_OPTION');
    expect(code(() => createStore({ idelTimeout: '5m' } as never))).toBe('LAPSE_INVALID_OPTION');
    expect(code(() => createStore({ clock: {} as never }))).toBe('LAPSE_INVALID_OPTION');
  });
  it('registers session_cleanup on the scheduler, and none with sweepInterval false', async () => {
    const clock = new ManualClock(0);
    const store = createStore({ clock, sweepInterval: '10s' });
    expect(store.scheduler.list().map((j) => j.id)).toEqual(['session_cleanup']);
    await store.create({ idleTimeout: '5s' });
    await clock.advance('10s');
    const job = store.scheduler.list()[0];
    expect(job?.runs).toBe(1);
    expect(job?.lastResult).toMatchObject({ deleted: 1 });
    expect(await store.size()).toBe(0);
    await store.close();
    expect(clock.pendingTimers()).toBe(0);
    const off = createStore({ clock, sweepInterval: false });
    expect(off.scheduler.list()).toEqual([]);
    await off.close();
  });
});

describe('ManualClock', () => {
  it('waitFor: advance() waits for slow work before each timer, so its next timer still fires in order', async () => {
    const clock = new ManualClock(0);
    const fired: number[] = [];
    // Work that takes longer than the event-loop turns advance() lets pass (a network round
    // trip: here 50 turns, no sleep) and then sets a timer 10 ms on.
    const realWork = async () => {
      for (let i = 0; i < 50; i++) await new Promise<void>((r) => setImmediate(r));
    };
    let slow: Promise<void> | undefined;
    const step = () => {
      slow = realWork().then(() => {
        clock.setTimer(() => fired.push(clock.now()), 10);
      });
    };
    clock.setTimer(step, 5);
    const without = new ManualClock(0);
    // Without waitFor the jump to 100 outruns the real work: nothing fires by then.
    let late = false;
    without.setTimer(() => {
      void realWork().then(() => without.setTimer(() => (late = true), 10));
    }, 5);
    await without.advance(100);
    expect(late).toBe(false);
    clock.waitFor(async () => {
      await slow;
    });
    await clock.advance(100);
    expect(fired).toEqual([15]);
  });
});

describe('expiry queue', () => {
  it('pops in key order and counts due items without visiting the rest', () => {
    const q = new ExpiryQueue<{ k: number }>();
    const keys = Array.from({ length: 2000 }, () => Math.floor(Math.random() * 1000));
    for (const [k, key] of keys.entries()) q.push(key, { k });
    expect(q.size).toBe(2000);
    expect(q.countDue(499, () => true)).toBe(keys.filter((k) => k <= 499).length);
    expect(q.countDue(499, (i) => i.k % 2 === 0)).toBe(keys.filter((k, i) => k <= 499 && i % 2 === 0).length);
    let last = -1;
    const seen = new Set<number>();
    while (q.size > 0) {
      const key = q.peekKey() as number;
      const item = q.pop() as { k: number };
      expect(key).toBeGreaterThanOrEqual(last);
      expect(keys[item.k]).toBe(key);
      seen.add(item.k);
      last = key;
    }
    expect(seen.size).toBe(2000);
    expect(q.pop()).toBeUndefined();
  });
});
