import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { Backend } from '../src/core/backend.js';
import { type SqliteBackend, sqlite } from '../src/backends/sqlite/backend.js';
import { isLapseError } from '../src/core/errors.js';
import { sessionRecord } from './fixtures/sqlite-record.js';
import { walCommits } from '../../../test/helpers/sqlite-wal.js';
import { tempDir } from '../../../test/helpers/tmp.js';

let tmp: ReturnType<typeof tempDir>;
let backends: Backend[] = [];

afterEach(async () => {
  for (const b of backends) await b.close();
  backends = [];
  tmp?.cleanup();
});

function open(): { inner: SqliteBackend; b: Backend; commits: () => number } {
  tmp = tempDir('lapse-gc-');
  const path = join(tmp.dir, 'g.db');
  // No background checkpoint: the WAL then only grows during the test, and its commit frames
  // count the transactions that reached the file (PRAGMA data_version cannot: it moves once
  // per look, however many commits came in between).
  const inner = sqlite({ path, synchronous: 'full', checkpointInterval: false });
  const start = walCommits(path);
  const b = inner.grouped();
  backends.push(b);
  return { inner, b, commits: () => walCommits(path) - start };
}

it('writes issued in one turn share one commit; each caller gets its own result or error', async () => {
  const { b, commits } = open();
  const now = Date.now();
  await Promise.all(['a', 'b', 'c'].map((id) => b.insert(sessionRecord(id, now), now, {})));
  expect(commits()).toBe(1);
  const outcomes = await Promise.allSettled([
    b.update('a', '{"n":1}', now, { expectedVersion: 1 }),
    b.update('b', '{"n":1}', now, { expectedVersion: 7 }), // a conflict: fails alone
    b.update('missing', '{}', now, {}), // not found: fails alone
    b.insert(sessionRecord('c', now), now, {}), // already live: fails alone
    b.update('c', '{"n":2}', now, {}),
    b.remove('b', now, {}),
  ]);
  expect(commits()).toBe(2);
  expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected', 'fulfilled', 'fulfilled']);
  expect(isLapseError((outcomes[1] as PromiseRejectedResult).reason, 'LAPSE_VERSION_CONFLICT')).toBe(true);
  expect(isLapseError((outcomes[2] as PromiseRejectedResult).reason, 'LAPSE_NOT_FOUND')).toBe(true);
  expect(isLapseError((outcomes[3] as PromiseRejectedResult).reason, 'LAPSE_INVALID_INPUT')).toBe(true);
  expect((outcomes[0] as PromiseFulfilledResult<{ version: number }>).value.version).toBe(2);
  // What failed left nothing behind; what succeeded is there, counters included.
  expect((await b.get('a', now))?.data).toBe('{"n":1}');
  expect((await b.get('c', now))?.data).toBe('{"n":2}');
  expect(await b.get('b', now)).toBeNull();
  expect((await b.stats(now)).sessions).toBe(2);
});

it('close() writes what is queued before it closes the file', async () => {
  const { b } = open();
  const now = Date.now();
  const pending = b.insert(sessionRecord('late', now), now, {});
  await b.close();
  await expect(pending).resolves.toMatchObject({ record: { id: 'late' } });
  backends = backends.filter((x) => x !== b);
  const again = sqlite({ path: join(tmp.dir, 'g.db') });
  backends.push(again);
  expect(again.get('late', now)?.id).toBe('late');
});
