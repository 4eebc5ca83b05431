import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sqlite } from '../src/backends/sqlite/backend.js';
import { sessionRecord } from './fixtures/sqlite-record.js';
import type { WorkerPlan, WorkerReport } from './fixtures/sqlite-worker.js';
import { tempDir } from '../../../test/helpers/tmp.js';
import { Workers } from '../../../test/helpers/workers.js';

const WORKER = fileURLToPath(new URL('./fixtures/sqlite-worker.ts', import.meta.url));
const forks = new Workers(WORKER);
const CLOSER = fileURLToPath(new URL('./fixtures/sqlite-close.ts', import.meta.url));

let tmp: ReturnType<typeof tempDir>;

beforeEach(() => {
  tmp = tempDir('lapse-sqlite-mp-');
});

afterEach(() => {
  forks.killAll();
  tmp.cleanup();
});

function seed(id: string, now: number) {
  return sessionRecord(id, now, { data: JSON.stringify({ n: 0 }) });
}

describe('sqlite: two processes on one file', () => {
  it('no SQLITE_BUSY reaches the caller; version checks and leases hold across processes', async () => {
    const path = join(tmp.dir, 'shared.db');
    const setup = sqlite({ path });
    const now = Date.now();
    setup.insert(seed('counter', now), now, {});
    setup.insert(seed('leased', now), now, {});
    const fenceBefore = setup.lock('leased', 'setup', 1, now - 10).fence; // already run out
    await setup.close();

    const plan: WorkerPlan = { creates: 400, increments: 250, leased: 120 };
    const [a, b] = await Promise.all([forks.start([path, 'a']), forks.start([path, 'b'])]);
    const [ra, rb] = await Promise.all([forks.result<WorkerPlan, WorkerReport>(a, plan), forks.result<WorkerPlan, WorkerReport>(b, plan)]);

    expect(ra.error).toBeUndefined();
    expect(rb.error).toBeUndefined();
    expect(ra.created + rb.created).toBe(2 * plan.creates);
    // Exactly one process got the job lease.
    expect(Number(ra.gotJob) + Number(rb.gotJob)).toBe(1);
    // Every fence is new, larger than any before, and each process saw its own grow.
    const fences = [...ra.fences, ...rb.fences];
    expect(new Set(fences).size).toBe(fences.length);
    expect(Math.min(...fences)).toBeGreaterThan(fenceBefore);
    for (const r of [ra, rb]) expect(r.fences).toEqual([...r.fences].sort((x, y) => x - y));

    const check = sqlite({ path });
    try {
      const t = Date.now();
      const counter = check.get('counter', t);
      expect(JSON.parse(counter?.data ?? 'null')).toEqual({ n: 2 * plan.increments });
      expect(counter?.version).toBe(1 + 2 * plan.increments);
      const leased = check.get('leased', t);
      expect(JSON.parse(leased?.data ?? 'null')).toEqual({ n: 2 * plan.leased });
      expect(check.stats(t)).toEqual({ sessions: 2 + 2 * plan.creates, users: 10, locked: 0 });
      expect(check.listUser('user-3', t)).toHaveLength((2 * plan.creates) / 10);
      expect(check.db.pragma('integrity_check', { simple: true })).toBe('ok');
    } finally {
      await check.close();
    }
  }, 60_000);

  it('a process that closes the backend runs on after close() and leaves a clean file', async () => {
    const path = join(tmp.dir, 'closing.db');
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', CLOSER, path], { timeout: 30_000 }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      );
    });
    expect(out.trim()).toBe('closed 1');
    expect(existsSync(`${path}-wal`)).toBe(false);
    const check = sqlite({ path });
    try {
      expect(check.get('closing', Date.now())?.accessCount).toBe(1);
    } finally {
      await check.close();
    }
  });
});
