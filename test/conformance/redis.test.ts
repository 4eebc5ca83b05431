import { afterAll, beforeAll } from 'vitest';
import type { Backend } from '../../src/backend.js';
import { redis } from '../../src/backends/redis.js';
import type { ManualClock } from '../../src/clock.js';
import { parseDuration } from '../../src/duration.js';
import { silentLogger } from '../../src/logger.js';
import { describeRedis, randomPrefix, type RedisServer, startRedis } from '../helpers/redis-server.js';
import { runConformance } from './suite.js';

// One real redis-server for the file; every test gets its own key prefix.
describeRedis('redis backend', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  runConformance('redis', {
    make: ({ clock }) => {
      const inflight = trackInflight(redis({ url: server.url, prefix: randomPrefix(), logger: silentLogger }));
      drainBeforeTimers(clock, inflight.drain);
      return inflight.backend;
    },
  });
});

/**
 * ManualClock.advance lets a few setImmediate turns pass between timers, enough for the
 * memory and SQLite backends, whose calls finish without real I/O. A Redis call is a real
 * round trip, so a store step that started before advance() (a lock retry, say) would set
 * its next timer only after the clock had already jumped past it. This makes advance()
 * first wait until no backend call is in flight, before every timer it fires.
 */
function drainBeforeTimers(clock: ManualClock, drain: () => Promise<void>): void {
  const due = new Map<unknown, number>();
  const setTimer = clock.setTimer.bind(clock);
  const clearTimer = clock.clearTimer.bind(clock);
  const advance = clock.advance.bind(clock);
  clock.setTimer = (fn, ms) => {
    const handle: unknown = setTimer(() => {
      due.delete(handle);
      fn();
    }, ms);
    due.set(handle, clock.now() + Math.max(0, ms));
    return handle;
  };
  clock.clearTimer = (handle) => {
    due.delete(handle);
    clearTimer(handle);
  };
  clock.advance = async (ms) => {
    const target = clock.now() + parseDuration(ms);
    for (let i = 0; i < 10_000; i++) {
      await drain();
      const next = Math.min(...due.values());
      if (!(next <= target)) break;
      await advance(Math.max(0, next - clock.now()));
    }
    await advance(target - clock.now());
    await drain();
  };
}

/** Counts a backend's calls in flight; drain() resolves once none is left after a few turns. */
function trackInflight(target: Backend): { backend: Backend; drain: () => Promise<void> } {
  let inflight = 0;
  let idle: Array<() => void> = [];
  const backend = new Proxy(target, {
    get(t, prop, receiver) {
      const v: unknown = Reflect.get(t, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const out: unknown = v.apply(t, args);
        if (out instanceof Promise) {
          inflight++;
          out.then(done, done);
        }
        return out;
      };
    },
  });
  function done(): void {
    if (--inflight > 0) return;
    const wake = idle;
    idle = [];
    for (const w of wake) w();
  }
  async function drain(): Promise<void> {
    for (let round = 0; round < 1000; round++) {
      for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
      if (inflight === 0) return;
      await new Promise<void>((r) => idle.push(r));
    }
  }
  return { backend, drain };
}
