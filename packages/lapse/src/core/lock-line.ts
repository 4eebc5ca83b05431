import type { TimerClock } from './clock.js';

/**
 * Callers of this process waiting for one session's lease stand in line: only the first tries
 * the backend (and waits for the release), the others wait for it to be done. A release then
 * costs one attempt from this process, not one from every waiter.
 */
export class LockLine {
  private tails = new Map<string, Promise<void>>();

  constructor(private readonly clock: TimerClock) {}

  /**
   * Runs `task` once the callers before this one for `key` are done; when `ms` pass first,
   * leaves the line and rejects with `timeout()` without running it.
   */
  turn<T>(key: string, ms: number, task: () => Promise<T>, timeout: () => Error): Promise<T> {
    const before = this.tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    this.tails.set(key, mine);
    const done = () => {
      if (this.tails.get(key) === mine) this.tails.delete(key);
      release();
    };
    const run = async (): Promise<T> => {
      try {
        return await task();
      } finally {
        done();
      }
    };
    if (!before) return run();
    return new Promise<T>((resolve, reject) => {
      let waiting = true;
      const timer = this.clock.setTimer(() => {
        if (!waiting) return;
        waiting = false;
        // Those behind this caller now wait for the one before it.
        void before.then(done);
        reject(timeout());
      }, Math.max(1, ms));
      void before.then(() => {
        if (!waiting) return;
        waiting = false;
        this.clock.clearTimer(timer);
        run().then(resolve, reject);
      });
    });
  }
}
