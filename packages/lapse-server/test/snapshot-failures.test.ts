import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { memory } from 'lapse/internal';
import { ManualClock } from 'lapse/internal';
import type { LapseError } from 'lapse/internal';
import type { Logger } from 'lapse/internal';
import { silentLogger } from 'lapse/internal';
import { ServerMetrics } from '../src/server/metrics.js';
import { createStore, type SessionStore } from 'lapse/internal';
import { tempDir } from '../../../test/helpers/tmp.js';
import { cleanupsAfterEach } from '../../../test/helpers/cleanups.js';

const cleanups = cleanupsAfterEach();
function dir(): string {
  const t = tempDir('lapse-snapfail-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** A logger that keeps its error lines. */
function errorLog(): { logger: Logger; errors: { obj: Record<string, unknown>; msg?: string }[] } {
  const errors: { obj: Record<string, unknown>; msg?: string }[] = [];
  return { logger: { ...silentLogger, error: (obj: object, msg?: string) => errors.push({ obj: obj as Record<string, unknown>, msg }) }, errors };
}

/** A store on a snapshotting memory backend, every 1s of the manual clock; close() may fail (the final snapshot). */
function setup(path: string, logger: Logger = silentLogger) {
  const clock = new ManualClock(1_700_000_000_000);
  const backend = memory({ clock, logger, snapshot: { path, interval: '1s' } });
  const store = createStore({ clock, backend, sweepInterval: false, logger });
  cleanups.push(() => store.close().catch(() => {}));
  return { clock, backend, store };
}

/** The next 'error' event of the store, as a promise. */
function nextError(store: SessionStore): Promise<LapseError> {
  return new Promise((resolve) => {
    const on = (err: LapseError) => {
      store.off('error', on);
      resolve(err);
    };
    store.on('error', on);
  });
}

describe('memory snapshots fail loudly', () => {
  it('an unwritable folder (its parent is a file): error event, log line, degraded health, metrics', async () => {
    const d = dir();
    writeFileSync(join(d, 'file'), 'not a folder');
    const path = join(d, 'file', 'sessions.snap');
    const { logger, errors } = errorLog();
    const { clock, backend, store } = setup(path, logger);
    expect(backend.health()).toEqual({ ok: true });
    await store.create({ userId: 'u' });
    const failed = nextError(store);
    await clock.advance('1s');
    const err = await failed;
    expect(err.code).toBe('LAPSE_BACKEND_UNAVAILABLE');
    expect(err.message).toMatch(/snapshot/);
    expect(errors.some((e) => e.obj.path === path && /snapshot/.test(e.msg ?? ''))).toBe(true);
    const health = backend.health();
    expect(health.ok).toBe(false);
    expect(health.reason).toMatch(/snapshot/);
    const stats = await store.stats();
    expect(stats.snapshot).toEqual({ failures: 1, lastSuccessAt: null });
    expect(stats.backendErrors).toBe(1);
    const text = await new ServerMetrics(store).render();
    expect(text).toMatch(/^lapse_snapshot_failures_total 1$/m);
    expect(text).toMatch(/^lapse_snapshot_last_success_timestamp_seconds 0$/m);

    // The folder becomes writable: the next snapshot succeeds and health recovers.
    rmSync(join(d, 'file'));
    mkdirSync(join(d, 'file'));
    await clock.advance('1s');
    await backend.save();
    expect(backend.health()).toEqual({ ok: true });
    expect((await store.stats()).snapshot).toEqual({ failures: 1, lastSuccessAt: clock.now() });
    expect(existsSync(path)).toBe(true);
  });

  it('a full disk (the temp file is /dev/full): ENOSPC is an error event and degraded health', async () => {
    const path = join(dir(), 'sessions.snap');
    const { clock, backend, store } = setup(path);
    await store.create({});
    symlinkSync('/dev/full', `${path}.tmp-${process.pid}`);
    const failed = nextError(store);
    await clock.advance('1s');
    expect((await failed).message).toMatch(/ENOSPC/);
    expect(backend.health().ok).toBe(false);
    await expect(backend.save()).rejects.toThrow(/ENOSPC/);
  });

  it('a snapshot that cannot replace the old one (the path is a folder): an explicit save() rejects too', async () => {
    const path = join(dir(), 'sessions.snap');
    const { backend, store } = setup(path);
    mkdirSync(path);
    writeFileSync(join(path, 'keep'), 'x');
    const failed = nextError(store);
    await expect(backend.save()).rejects.toThrow();
    expect((await failed).code).toBe('LAPSE_BACKEND_UNAVAILABLE');
    expect(backend.health().ok).toBe(false);
  });
});

describe('memory snapshot temp files and overlap', () => {
  it("removes temp files of dead processes (and its own pid's) at start, keeps a live process's and other files", async () => {
    const d = dir();
    const path = join(d, 'sessions.snap');
    // A pid that is surely not running: a child that has exited.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    for (const pid of [dead, process.pid, process.ppid]) writeFileSync(`${path}.tmp-${pid}`, 'partial');
    writeFileSync(`${path}.corrupt-123`, 'kept');
    writeFileSync(join(d, 'other.tmp-1'), 'not ours');
    const backend = memory({ snapshot: { path, interval: '1h' }, logger: silentLogger });
    cleanups.push(() => backend.close());
    expect(readdirSync(d).sort()).toEqual(['other.tmp-1', 'sessions.snap.corrupt-123', `sessions.snap.tmp-${process.ppid}`].sort());
  });

  it('never stacks saves: ticks during a write are skipped, an explicit save() waits for one more write', async () => {
    const path = join(dir(), 'sessions.snap');
    const { clock, backend, store } = setup(path);
    await store.create({});
    // A FIFO as the temp file: the write stays in flight until the test reads it.
    const tmp = `${path}.tmp-${process.pid}`;
    execFileSync('mkfifo', [tmp]);
    // Opening the FIFO read-write never blocks, and it lets the blocked write go on, into the
    // pipe. Unlinked, the next write makes a regular file.
    const release = (): number => {
      const fd = openSync(tmp, constants.O_RDWR);
      rmSync(tmp);
      return fd;
    };
    cleanups.push(async () => {
      const fd = existsSync(tmp) && statSync(tmp).isFIFO() ? release() : undefined;
      await store.close().catch(() => {});
      if (fd !== undefined) closeSync(fd);
    });
    await clock.advance('1s'); // starts the write, which blocks opening the FIFO
    for (let i = 0; i < 5; i++) await clock.advance('1s');
    expect(backend.snapshotState()).toMatchObject({ writing: true, writes: 0, skipped: 5 });
    const explicit = backend.save();
    await store.create({});
    const fd = release();
    await explicit;
    closeSync(fd);
    // The write that was in flight (into the pipe, or the file if it had not opened yet; then
    // its rename may fail), then one more for save(), with both sessions: two writes, not six.
    expect(backend.snapshotState()).toMatchObject({ writing: false, writes: 2, skipped: 5, lastError: null });
    const back = memory({ clock, snapshot: { path, interval: '1h' }, logger: silentLogger });
    cleanups.push(() => back.close());
    expect(back.count(clock.now())).toBe(2);
  });
});
