import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { JobLease } from '../src/core/backend.js';
import { ManualClock } from '../src/core/clock.js';
import { LapseError } from '../src/core/errors.js';
import { memoryJobLease } from '../src/scheduler/lease.js';
import { defaultLogger, type Logger, silentLogger } from '../src/util/logger.js';
import { type JobContext, Scheduler } from '../src/scheduler/scheduler.js';
import { tempDir } from '../../../test/helpers/tmp.js';

interface Line {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string | undefined;
}

/** A logger that keeps what it is given, to assert on the structured fields. */
function recorder(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = [];
  const at =
    (level: Line['level']) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj: obj as Record<string, unknown>, msg });
    };
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

function deferred<T = unknown>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return err instanceof LapseError ? err.code : `not a LapseError: ${String(err)}`;
  }
  return undefined;
}

const open: Scheduler[] = [];
function make(opts: ConstructorParameters<typeof Scheduler>[0] = {}): Scheduler {
  const s = new Scheduler({ logger: silentLogger, ...opts });
  open.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.stop()));
});

describe('Scheduler: when jobs run', () => {
  it('runs at slots aligned to multiples of the interval, and reports them in list()', async () => {
    const clock = new ManualClock(1234);
    const s = make({ clock });
    const seen: Array<{ scheduledAt: number; at: number }> = [];
    s.every('tick', '1s', ({ scheduledAt }) => {
      seen.push({ scheduledAt, at: clock.now() });
      return seen.length;
    });
    expect(s.list()[0]?.nextRunAt).toBe(2000);
    await clock.set(5000);
    expect(seen).toEqual([2000, 3000, 4000, 5000].map((t) => ({ scheduledAt: t, at: t })));
    expect(s.list()).toEqual([
      {
        id: 'tick',
        schedule: 'every 1s',
        running: false,
        lastRunAt: 5000,
        lastDurationMs: 0,
        lastResult: 4,
        lastError: null,
        nextRunAt: 6000,
        runs: 4,
        failures: 0,
      },
    ]);
  });

  it('registering the same id replaces the schedule instead of adding one', async () => {
    const clock = new ManualClock(0);
    const s = make({ clock });
    let first = 0;
    let second = 0;
    s.every('job', '1s', () => first++);
    s.every('job', '60s', () => second++);
    s.every('job', '2s', () => second++);
    expect(clock.pendingTimers()).toBe(1);
    await clock.advance('10s');
    expect(first).toBe(0);
    expect(second).toBe(5);
    const list = s.list();
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ id: 'job', schedule: 'every 2s', runs: 5 });
  });

  it('adds a random jitter in [0, jitter) to each slot', async () => {
    const clock = new ManualClock(0);
    const s = make({ clock });
    const slots: number[] = [];
    const offsets: number[] = [];
    s.every('spread', '10s', ({ scheduledAt }) => {
      slots.push(scheduledAt);
      offsets.push(clock.now() - scheduledAt);
    }, { jitter: '2s' });
    await clock.advance('200s');
    expect(slots.slice(0, 19)).toEqual(Array.from({ length: 19 }, (_, i) => (i + 1) * 10_000));
    for (const o of offsets) {
      expect(o).toBeGreaterThanOrEqual(0);
      expect(o).toBeLessThan(2000);
    }
    expect(new Set(offsets).size).toBeGreaterThan(1);
  });

  it('runOnStart runs the current slot at once, then keeps to the slots', async () => {
    const clock = new ManualClock(90_500);
    const s = make({ clock });
    const slots: number[] = [];
    s.every('warm', '1m', ({ scheduledAt }) => {
      slots.push(scheduledAt);
    }, { runOnStart: true });
    await clock.advance(0);
    expect(slots).toEqual([60_000]);
    await clock.set(180_000);
    expect(slots).toEqual([60_000, 120_000, 180_000]);
  });

  it('cron runs at the times of its expression', async () => {
    const start = new Date(2026, 0, 1, 12, 0, 0).getTime();
    const clock = new ManualClock(start);
    const s = make({ clock });
    const slots: number[] = [];
    s.cron('nightly_report', '0 3 * * *', ({ scheduledAt }) => {
      slots.push(scheduledAt);
    });
    const jan2 = new Date(2026, 0, 2, 3, 0, 0).getTime();
    const jan3 = new Date(2026, 0, 3, 3, 0, 0).getTime();
    expect(s.list()[0]).toMatchObject({ schedule: '0 3 * * *', nextRunAt: jan2 });
    await clock.advance('2d');
    expect(slots).toEqual([jan2, jan3]);
    expect(s.list()[0]?.nextRunAt).toBe(new Date(2026, 0, 4, 3, 0, 0).getTime());

    s.cron('quarter', '*/15 * * * * *', () => {}, { timezone: 'UTC' });
    expect(s.list()[1]?.nextRunAt).toBe(Math.floor(clock.now() / 15_000) * 15_000 + 15_000);
  });

  it('rejects a bad interval, jitter, cron expression, id or fn with LAPSE_INVALID_OPTION', async () => {
    const s = make({ clock: new ManualClock(0) });
    const fn = (): void => {};
    expect(await codeOf(() => s.every('a', '6 hours', fn))).toBe('LAPSE_INVALID_OPTION');
    expect(await codeOf(() => s.every('a', 0, fn))).toBe('LAPSE_INVALID_OPTION');
    expect(await codeOf(() => s.every('a', '1s', fn, { jitter: '1s' }))).toBe('LAPSE_INVALID_OPTION');
    expect(await codeOf(() => s.cron('a', '61 * * * *', fn))).toBe('LAPSE_INVALID_OPTION');
    expect(await codeOf(() => s.cron('a', 'nope', fn))).toBe('LAPSE_INVALID_OPTION');
    expect(await codeOf(() => s.cron('a', '* * * * *', fn, { timezone: 'Not/AZone' }))).toBe('LAPSE_INVALID_OPTION');
    expect(await codeOf(() => s.every('', '1s', fn))).toBe('LAPSE_INVALID_OPTION');
    expect(await codeOf(() => s.every('a', '1s', 'fn' as unknown as () => void))).toBe('LAPSE_INVALID_OPTION');
    expect(s.list()).toEqual([]);
  });
});

describe('Scheduler: runs, failures and overlap', () => {
  it('never overlaps a job with itself: slots that fire during a run are skipped and logged', async () => {
    const clock = new ManualClock(0);
    const { logger, lines } = recorder();
    const s = make({ clock, logger });
    const gate = deferred();
    let calls = 0;
    s.every('slow', '1s', async () => {
      calls++;
      if (calls === 1) await gate.promise;
    });
    await clock.advance('5s');
    expect(calls).toBe(1);
    expect(s.list()[0]?.running).toBe(true);
    const skipped = lines.filter((l) => l.level === 'warn' && l.obj.job === 'slow');
    expect(skipped.map((l) => l.obj.scheduledAt)).toEqual([2000, 3000, 4000, 5000]);
    gate.resolve(undefined);
    await clock.advance(0); // let the run settle before the next timer fires
    await clock.advance('1s');
    expect(calls).toBe(2);
    expect(s.list()[0]).toMatchObject({ running: false, runs: 2, lastDurationMs: 0 });
  });

  it('logs a throwing job with job id, duration and error, counts it, and keeps it scheduled', async () => {
    const clock = new ManualClock(0);
    const { logger, lines } = recorder();
    const s = make({ clock, logger });
    const gate = deferred();
    let calls = 0;
    s.every('flaky', '1s', async () => {
      calls++;
      if (calls === 1) {
        await gate.promise;
        throw new Error('boom');
      }
      return 'ok';
    });
    await clock.advance('1s');
    await clock.advance('300ms');
    gate.resolve(undefined);
    await clock.advance(0);
    const errors = lines.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.obj).toMatchObject({ job: 'flaky', durationMs: 300 });
    const err = errors[0]?.obj.err;
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('boom');
    expect(s.list()[0]).toMatchObject({ runs: 1, failures: 1, lastError: 'boom', lastDurationMs: 300, nextRunAt: 2000 });

    await clock.advance('700ms');
    expect(calls).toBe(2);
    expect(s.list()[0]).toMatchObject({ runs: 2, failures: 1, lastError: null, lastResult: 'ok' });
    const ok = lines.filter((l) => l.level === 'info' && l.obj.job === 'flaky');
    expect(ok.map((l) => l.obj)).toEqual([{ job: 'flaky', durationMs: 0, result: 'ok' }]);
  });

  it('a job that throws synchronously is handled the same way', async () => {
    const clock = new ManualClock(0);
    const { logger, lines } = recorder();
    const s = make({ clock, logger });
    s.every('sync', '1s', () => {
      throw new TypeError('bad');
    });
    await clock.advance('3s');
    expect(s.list()[0]).toMatchObject({ runs: 3, failures: 3, running: false, lastError: 'bad' });
    expect(lines.filter((l) => l.level === 'error' && l.obj.job === 'sync')).toHaveLength(3);
  });

  it('runNow returns the result, joins a run in progress instead of starting a second, and rejects with the error', async () => {
    const clock = new ManualClock(0);
    const s = make({ clock });
    const gate = deferred<string>();
    const contexts: JobContext[] = [];
    s.every('report', '1h', (ctx) => {
      contexts.push(ctx);
      return gate.promise;
    });
    await clock.advance('1s');
    const a = s.runNow('report');
    const b = s.runNow('report');
    await clock.advance(0);
    expect(contexts).toEqual([{ id: 'report', scheduledAt: 1000 }]);
    expect(s.list()[0]?.running).toBe(true);
    gate.resolve('done');
    expect(await a).toBe('done');
    expect(await b).toBe('done');
    expect(s.list()[0]).toMatchObject({ runs: 1, running: false, lastResult: 'done' });

    s.every('fails', '1h', () => Promise.reject(new Error('nope')));
    await expect(s.runNow('fails')).rejects.toThrow('nope');
    expect(s.list()[1]).toMatchObject({ runs: 1, failures: 1, lastError: 'nope' });
  });

  it('runNow joins a scheduled run that is in progress', async () => {
    const clock = new ManualClock(0);
    const s = make({ clock });
    const gate = deferred<number>();
    let calls = 0;
    s.every('tick', '1s', () => {
      calls++;
      return gate.promise;
    });
    await clock.advance('1s');
    const p = s.runNow('tick');
    gate.resolve(7);
    expect(await p).toBe(7);
    expect(calls).toBe(1);
  });

  it('runNow of an unknown id is LAPSE_NOT_FOUND; remove of one is a no-op', async () => {
    const s = make({ clock: new ManualClock(0) });
    expect(await codeOf(s.runNow('missing'))).toBe('LAPSE_NOT_FOUND');
    expect(s.remove('missing')).toBe(false);
  });

  it('replacing a job while it runs lets the old run finish without overlapping the new schedule', async () => {
    const clock = new ManualClock(0);
    const s = make({ clock });
    const gate = deferred();
    const calls: string[] = [];
    s.every('job', '1s', async () => {
      calls.push('old');
      await gate.promise;
    });
    await clock.advance('1s');
    s.every('job', '1s', () => {
      calls.push('new');
    });
    await clock.advance('2s');
    expect(calls).toEqual(['old']);
    gate.resolve(undefined);
    await clock.advance(0); // let the run settle before the next timer fires
    await clock.advance('1s');
    expect(calls).toEqual(['old', 'new']);
    expect(clock.pendingTimers()).toBe(1);
  });

  it('remove clears the timer; a run in progress finishes and stop() still waits for it', async () => {
    const clock = new ManualClock(0);
    const s = make({ clock });
    const gate = deferred();
    let done = false;
    s.every('gone', '1s', async () => {
      await gate.promise;
      done = true;
    });
    await clock.advance('1s');
    s.remove('gone');
    expect(s.list()).toEqual([]);
    expect(clock.pendingTimers()).toBe(0);
    const stopped = s.stop();
    await clock.advance(0);
    expect(done).toBe(false);
    gate.resolve(undefined);
    await stopped;
    expect(done).toBe(true);
  });
});

describe('Scheduler: stop', () => {
  it('waits for a running job, clears every timer, is idempotent, and refuses new work after', async () => {
    const clock = new ManualClock(0);
    const s = make({ clock });
    const gate = deferred();
    let finished = false;
    s.every('long', '1s', async () => {
      await gate.promise;
      finished = true;
    });
    s.cron('nightly', '0 3 * * *', () => {});
    await clock.advance('1s');
    expect(clock.pendingTimers()).toBe(2);

    let stopped = false;
    const first = s.stop().then(() => {
      stopped = true;
    });
    await clock.advance(0);
    expect(stopped).toBe(false);
    expect(clock.pendingTimers()).toBe(0);
    gate.resolve(undefined);
    await first;
    expect(finished).toBe(true);
    await s.stop();
    expect(clock.pendingTimers()).toBe(0);
    expect(s.list().map((j) => j.nextRunAt)).toEqual([null, null]);

    expect(await codeOf(() => s.every('x', '1s', () => {}))).toBe('LAPSE_CLOSED');
    expect(await codeOf(() => s.cron('x', '* * * * *', () => {}))).toBe('LAPSE_CLOSED');
    expect(await codeOf(s.runNow('long'))).toBe('LAPSE_CLOSED');
    await clock.advance('10s');
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe('Scheduler with a lease: one run per slot across a cluster', () => {
  it('three schedulers sharing one lease run each slot exactly once in total', async () => {
    const clock = new ManualClock(0);
    const lease = memoryJobLease({ clock });
    const runs: Array<{ node: number; scheduledAt: number }> = [];
    const nodes = [0, 1, 2].map((node) => {
      const s = make({ clock, lease });
      s.every('session_cleanup', '1s', ({ scheduledAt }) => {
        runs.push({ node, scheduledAt });
      }, { jitter: '300ms' });
      return s;
    });
    await clock.advance('20s');
    const slots = runs.map((r) => r.scheduledAt).sort((a, b) => a - b);
    const expected = Array.from({ length: 19 }, (_, i) => (i + 1) * 1000);
    // Slot 20000 may or may not have fired by t=20000 (jitter 0 fires on the boundary).
    expect(slots.filter((t) => t < 20_000)).toEqual(expected);
    expect(new Set(slots).size).toBe(slots.length);
    expect(new Set(runs.map((r) => r.node)).size).toBeGreaterThan(1);
    const total = nodes.reduce((n, s) => n + (s.list()[0]?.runs ?? 0), 0);
    expect(total).toBe(runs.length);
    await Promise.all(nodes.map((s) => s.stop()));
    expect(clock.pendingTimers()).toBe(0);
  });

  it('runOnStart on a second node does not run a slot the first already ran', async () => {
    const clock = new ManualClock(30_000);
    const lease = memoryJobLease({ clock });
    const runs: number[] = [];
    const job = ({ scheduledAt }: JobContext): void => {
      runs.push(scheduledAt);
    };
    make({ clock, lease }).every('warm', '1m', job, { runOnStart: true });
    await clock.advance('10s');
    make({ clock, lease }).every('warm', '1m', job, { runOnStart: true });
    await clock.advance('40s');
    expect(runs).toEqual([0, 60_000]);
  });

  it('renews the slot key while a run lasts longer than half its ttl, and never releases it', async () => {
    const clock = new ManualClock(0);
    const inner = memoryJobLease({ clock });
    let renewals = 0;
    let releases = 0;
    const lease: JobLease = {
      acquire: (k, t) => inner.acquire(k, t),
      renew: (k, tok, t) => {
        renewals++;
        return inner.renew(k, tok, t);
      },
      release: (k, tok) => {
        releases++;
        return inner.release(k, tok);
      },
    };
    const s = make({ clock, lease });
    const gate = deferred();
    s.every('long', '1s', () => gate.promise);
    await clock.advance('1s');
    await clock.advance('2500ms');
    expect(renewals).toBe(5);
    // Well past the first ttl (1s) the slot is still held by the running node.
    expect(await inner.acquire('long:1000', 1000)).toBeNull();
    gate.resolve(undefined);
    await clock.advance(0);
    await clock.advance('10s');
    expect(renewals).toBe(5);
    expect(releases).toBe(0);
    // t = 13500: the slot that started at 13000 is done, and its key still held.
    expect(await inner.acquire('long:13000', 1000)).toBeNull();
    await s.stop();
    expect(clock.pendingTimers()).toBe(0);
  });

  it('a lease error is logged and counted as a failure of that slot, and the job stays scheduled', async () => {
    const clock = new ManualClock(0);
    const { logger, lines } = recorder();
    let failNext = true;
    const inner = memoryJobLease({ clock });
    const lease: JobLease = {
      acquire: async (k, t) => {
        if (failNext) {
          failNext = false;
          throw new Error('redis down');
        }
        return inner.acquire(k, t);
      },
      renew: (k, tok, t) => inner.renew(k, tok, t),
      release: (k, tok) => inner.release(k, tok),
    };
    const s = make({ clock, logger, lease });
    let calls = 0;
    s.every('cleanup', '1s', () => calls++);
    await clock.advance('1s');
    expect(calls).toBe(0);
    expect(s.list()[0]).toMatchObject({ runs: 0, failures: 1, lastError: 'redis down', nextRunAt: 2000 });
    const err = lines.find((l) => l.level === 'error');
    expect(err?.obj).toMatchObject({ job: 'cleanup', scheduledAt: 1000 });
    await clock.advance('1s');
    expect(calls).toBe(1);
  });

  it('a slot held by another node is not run here', async () => {
    const clock = new ManualClock(0);
    const lease = memoryJobLease({ clock });
    expect(await lease.acquire('taken:1000', 5000)).not.toBeNull();
    const s = make({ clock, lease });
    const slots: number[] = [];
    s.every('taken', '1s', ({ scheduledAt }) => {
      slots.push(scheduledAt);
    });
    await clock.advance('3s');
    expect(slots).toEqual([2000, 3000]);
  });
});

describe('memoryJobLease', () => {
  it('grants a key to one holder until it expires; renew and release need the token', async () => {
    const clock = new ManualClock(0);
    const lease = memoryJobLease({ clock });
    const t1 = await lease.acquire('k', 1000);
    expect(typeof t1).toBe('string');
    expect(await lease.acquire('k', 1000)).toBeNull();
    expect(await lease.renew('k', 'wrong', 1000)).toBe(false);
    await clock.advance('900ms');
    expect(await lease.renew('k', t1 as string, 1000)).toBe(true);
    await clock.advance('900ms');
    expect(await lease.acquire('k', 1000)).toBeNull();
    await lease.release('k', 'wrong');
    expect(await lease.acquire('k', 1000)).toBeNull();
    await lease.release('k', t1 as string);
    const t2 = await lease.acquire('k', 1000);
    expect(t2).not.toBeNull();
    expect(t2).not.toBe(t1);
    await clock.advance('1s');
    expect(await lease.renew('k', t2 as string, 1000)).toBe(false);
    expect(await lease.acquire('k', 1000)).not.toBeNull();
  });
});

describe('logger', () => {
  it('defaultLogger logs at LAPSE_LOG_LEVEL, warn by default; a pino logger fits Logger', () => {
    const saved = process.env.LAPSE_LOG_LEVEL;
    try {
      delete process.env.LAPSE_LOG_LEVEL;
      expect(defaultLogger().level).toBe('warn');
      process.env.LAPSE_LOG_LEVEL = 'debug';
      expect(defaultLogger().level).toBe('debug');
    } finally {
      if (saved === undefined) delete process.env.LAPSE_LOG_LEVEL;
      else process.env.LAPSE_LOG_LEVEL = saved;
    }
    const asLogger: Logger = pino({ enabled: false });
    expect(typeof asLogger.child).toBe('function');
    expect(silentLogger.child?.({ a: 1 })).toBe(silentLogger);
  });
});

describe('Scheduler on real timers', () => {
  it('does not keep a process alive, and by default logs only failures, as JSON on stderr', () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, 'child.ts');
      const src = fileURLToPath(new URL('../src/scheduler/scheduler.ts', import.meta.url));
      writeFileSync(
        file,
        [
          `import { Scheduler } from ${JSON.stringify(src)};`,
          'const s = new Scheduler();',
          "s.every('quiet', '1h', () => 'fine', { runOnStart: true });",
          "s.every('boom', '1h', () => { throw new Error('kaboom'); }, { runOnStart: true });",
          "s.cron('nightly', '0 3 * * *', () => {});",
          // A ref'd timer lets the runOnStart runs happen; after it nothing holds the process.
          "setTimeout(() => console.log(JSON.stringify(s.list().map((j) => j.runs))), 300);",
        ].join('\n'),
      );
      const env = { ...process.env };
      delete env.LAPSE_LOG_LEVEL;
      const child = spawnSync(process.execPath, ['--import', 'tsx', file], {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        env,
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(child.signal).toBeNull();
      expect(child.status).toBe(0);
      expect(child.stdout.trim()).toBe('[1,1,0]');
      const lines = child.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 50, name: 'lapse', job: 'boom', msg: 'job failed', err: { message: 'kaboom' } });
      expect(typeof lines[0]?.durationMs).toBe('number');
    } finally {
      cleanup();
    }
  });
});
