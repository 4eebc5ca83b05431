import type { TimerClock } from './clock.js';

/**
 * Callers waiting for a lease to be released. They are woken by a release (notified,
 * not polled) or by their own timer, whichever comes first.
 */
export class LockWaiters {
  private waiting = new Map<string, Set<() => void>>();

  constructor(private readonly clock: TimerClock) {}

  /** Resolves on notify(id), after `ms`, or on close(). */
  wait(id: string, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const set = this.waiting.get(id) ?? new Set<() => void>();
      this.waiting.set(id, set);
      const done = () => {
        this.clock.clearTimer(timer);
        const s = this.waiting.get(id);
        s?.delete(done);
        if (s && s.size === 0) this.waiting.delete(id);
        resolve();
      };
      const timer = this.clock.setTimer(done, Math.max(1, ms));
      set.add(done);
    });
  }

  /** Wakes everyone waiting on `id`. */
  notify(id: string): void {
    const set = this.waiting.get(id);
    if (set) for (const done of [...set]) done();
  }

  /** Wakes everyone (they will see the store closed). */
  close(): void {
    for (const id of [...this.waiting.keys()]) this.notify(id);
  }
}
