import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { type Backend, createStore, isLapseError, silentLogger } from 'lapse/internal';
import { sqlite } from 'lapse/sqlite';
import { openBackend } from '../src/server/backend.js';
import { tempDir } from '../../../test/helpers/tmp.js';

// The service opens its SQLite file with group commit: the writes of one event-loop turn (the
// requests that arrive together) share one transaction, each caller told its own result.

let tmp: ReturnType<typeof tempDir> | undefined;
const open: Backend[] = [];

afterEach(async () => {
  for (const b of open.splice(0)) await b.close?.();
  tmp?.cleanup();
  tmp = undefined;
});

it("the service's SQLite backend group-commits: concurrent creates are written together after the turn, a failing write fails alone", async () => {
  tmp = tempDir('lapse-server-gc-');
  const path = join(tmp.dir, 'lapse.db');
  const backend = await openBackend(`sqlite:${path}`, { logger: silentLogger });
  open.push(backend);
  // A second connection sees what has been committed to the file.
  const watcher = sqlite({ path, logger: silentLogger, checkpointInterval: false });
  open.push(watcher);
  const rows = watcher.db.prepare('SELECT count(*) FROM lapse_sessions').pluck();

  const store = createStore({ backend, sweepInterval: false, logger: silentLogger });
  // The plain backend writes each create before store.create() returns its promise; the grouped
  // one queues them, past the microtasks of this turn, and commits them together.
  const pending = Array.from({ length: 10 }, (_, i) => store.create({ userId: `u${i % 3}`, data: { i } }));
  expect(rows.get()).toBe(0);
  await Promise.resolve();
  expect(rows.get()).toBe(0);
  const made = await Promise.all(pending);
  expect(rows.get()).toBe(10);
  expect(await store.size()).toBe(10);

  const [first, second] = made.map((m) => m.session.id) as [string, string];
  const outcomes = await Promise.allSettled([
    store.update(first, { n: 1 }),
    store.update(second, { n: 2 }, { expectedVersion: 99 }), // a conflict: fails alone
    store.create({ userId: 'u0', data: { late: true } }),
  ]);
  expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  expect(isLapseError((outcomes[1] as PromiseRejectedResult).reason, 'LAPSE_VERSION_CONFLICT')).toBe(true);
  expect(rows.get()).toBe(11);
  expect((await store.get(first))?.data).toEqual({ n: 1 });
  expect((await store.get(second))?.version).toBe(1);
  // The console's user directory (Backend.scanUsers) still reaches the file through the group.
  expect(await backend.scanUsers?.('u', null, 10, Date.now())).toEqual([
    { userId: 'u0', sessions: 5 },
    { userId: 'u1', sessions: 3 },
    { userId: 'u2', sessions: 3 },
  ]);
  await store.close();
});
