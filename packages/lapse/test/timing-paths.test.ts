import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sqlite } from '../src/backends/sqlite/backend.js';
import { ReadCache } from '../src/backends/sqlite/read-cache.js';
import { ManualClock } from '../src/core/clock.js';
import { createStore, type SessionStore } from '../src/core/store.js';
import { hashSecret, verifySecretOrDummy } from '../src/core/token.js';
import { tempDir } from '../../../test/helpers/tmp.js';

// What these paths cost is measured in bench/timing.ts; here: that they answer right.
describe('the miss path does the work of a wrong secret', () => {
  it('compares a secret against a dummy hash when there is no record, and never matches it', () => {
    expect(verifySecretOrDummy('s3cret', undefined)).toBe(false);
    expect(verifySecretOrDummy('s3cret', hashSecret('other'))).toBe(false);
    expect(verifySecretOrDummy('s3cret', hashSecret('s3cret'))).toBe(true);
  });

  it('ReadCache keeps absent ids like live ones: one miss in eight', () => {
    const cache = new ReadCache(100, () => 1);
    for (let i = 0; i < 7; i++) cache.admitMissing('gone');
    expect(cache.get('gone')).toBeUndefined();
    cache.admitMissing('gone');
    expect(cache.get('gone')).toBeNull();
    cache.delete('gone');
    expect(cache.get('gone')).toBeUndefined();
  });

  describe('on SQLite, an id probed while absent', () => {
    const stores: SessionStore[] = [];
    let cleanup = () => {};
    afterEach(async () => {
      for (const s of stores.splice(0)) await s.close();
      cleanup();
    });

    it('is found as soon as a session takes it, written here or by another connection', async () => {
      const tmp = tempDir('lapse-absent-');
      cleanup = tmp.cleanup;
      const clock = new ManualClock(1_700_000_000_000);
      const path = join(tmp.dir, 'lapse.db');
      // readCacheRecheck 0: every hit asks whether another connection wrote, so the check is exact.
      const open = () => createStore({ backend: sqlite({ path, clock, readCacheRecheck: 0 }), clock, sweepInterval: false });
      const a = open();
      const b = open();
      stores.push(a, b);
      for (const [writer, name] of [[a, 'mine'], [b, 'theirs']] as const) {
        // Enough probes that the absence is surely cached.
        for (let i = 0; i < 32; i++) expect(await a.get(name)).toBeNull();
        await writer.set(name, { by: name });
        expect((await a.get(name))?.data).toEqual({ by: name });
      }
      // A token whose id was probed while absent validates once its session exists.
      const { token, session } = await b.create({ data: 1 });
      await b.delete(session.id);
      for (let i = 0; i < 32; i++) expect(await a.validate(token)).toBeNull();
      expect(await a.get(session.id)).toBeNull();
    });
  });
});
