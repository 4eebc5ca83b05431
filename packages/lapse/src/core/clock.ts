import { parseDuration } from './duration.js';

/** Where Lapse reads the time. Inject one to test expiry without sleeping. */
export interface Clock {
  now(): number;
}

/** A clock that also schedules timers; ManualClock fires them when time is advanced. */
export interface TimerClock extends Clock {
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

/** The real clock: Date.now and unref'd timers. */
export const systemClock: TimerClock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.max(0, Math.min(ms, 2_147_483_647)));
    t.unref();
    return t;
  },
  clearTimer(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** Gives any clock timers: its own if it has them, real unref'd ones otherwise. */
export function timerClock(clock: Clock | undefined): TimerClock {
  if (!clock) return systemClock;
  const c = clock as Partial<TimerClock> & Clock;
  if (typeof c.setTimer === 'function' && typeof c.clearTimer === 'function') return c as TimerClock;
  return { now: () => clock.now(), setTimer: systemClock.setTimer, clearTimer: systemClock.clearTimer };
}

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that only moves when told to; its timers fire during `advance()`.
 * @example
 * const clock = new ManualClock(0);
 * const store = createStore({ clock, idleTimeout: '1m' });
 * await clock.advance('61s');
 */
export class ManualClock implements TimerClock {
  private t: number;
  private seq = 0;
  private timers = new Set<ManualTimer>();
  private readonly settlers: Array<() => Promise<void>> = [];

  constructor(start = 0) {
    this.t = start;
  }

  /**
   * Work `advance()` waits for before it fires each timer, besides a few turns of the event
   * loop: calls over a real network (a Redis backend) take longer than those turns, and a
   * step that started before the jump must register its next timer before time passes it.
   * @example clock.waitFor(() => backendCallsDone());
   */
  waitFor(settler: () => Promise<void>): void {
    this.settlers.push(settler);
  }

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.add(timer);
    return timer;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as ManualTimer);
  }

  /** Moves time forward by `ms`, firing due timers in order and letting their promises settle. */
  async advance(ms: number | string): Promise<void> {
    const target = this.t + parseDuration(ms);
    await this.settled(); // let work already under way register its timers first
    for (;;) {
      let next: ManualTimer | undefined;
      for (const timer of this.timers) {
        if (timer.at <= target && (!next || timer.at < next.at || (timer.at === next.at && timer.seq < next.seq))) next = timer;
      }
      if (!next) break;
      this.timers.delete(next);
      this.t = Math.max(this.t, next.at);
      next.fn();
      await this.settled();
    }
    this.t = target;
    await this.settled();
  }

  private async settled(): Promise<void> {
    await settle();
    for (const s of this.settlers) await s();
  }

  /** Sets the time (never backwards) without firing timers past it first. */
  async set(to: number): Promise<void> {
    await this.advance(Math.max(0, to - this.t));
  }

  /** How many timers are pending (for leak checks in tests). */
  pendingTimers(): number {
    return this.timers.size;
  }
}

/** Lets queued promise callbacks and I/O callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}
