import { describe, expect, it } from 'vitest';
import { ParsedDataCache } from '../src/core/parsed-data.js';
import { newRecord } from '../src/core/session.js';

function record(id: string, data: string, version = 1) {
  return { ...newRecord({ id, secretHash: '', userId: null, data, now: 0, idleTimeout: 1_000, absoluteTimeout: 10_000 }), version };
}

describe('ParsedDataCache', () => {
  it('parses and deeply freezes, and keeps a session read again and again, not one read once', () => {
    const cache = new ParsedDataCache(100);
    const rec = record('a', '{"x":{"y":[1]}}');
    const first = cache.of(rec) as { x: { y: number[] } };
    expect(first).toEqual({ x: { y: [1] } });
    expect(Object.isFrozen(first.x.y)).toBe(true);
    // A miss is kept one time in eight: within eight reads it is kept, and from then on it is the same object.
    const seen = new Set<unknown>([first]);
    for (let i = 0; i < 8; i++) seen.add(cache.of(rec));
    expect(seen.size).toBeGreaterThan(1);
    const kept = cache.of(rec);
    expect(cache.of(rec)).toBe(kept);
    expect(seen.has(kept)).toBe(true);
  });

  it('does not keep every miss: sessions each read once mostly stay out', () => {
    const cache = new ParsedDataCache(1_000);
    const recs = Array.from({ length: 80 }, (_, i) => record(`s${i}`, `{"i":${i}}`));
    const first = recs.map((r) => cache.of(r));
    const again = recs.map((r, i) => cache.of(r) === first[i]);
    expect(again.filter(Boolean).length).toBe(10);
  });

  it('replaces a kept entry at once when the version or text changes', () => {
    const cache = new ParsedDataCache(100);
    const put = cache.put(record('a', '{"v":1}'));
    expect(cache.of(record('a', '{"v":1}'))).toBe(put);
    const next = record('a', '{"v":2}', 2);
    const parsed = cache.of(next);
    expect(parsed).toEqual({ v: 2 });
    expect(cache.of(next)).toBe(parsed);
  });
});
