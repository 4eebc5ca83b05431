import type { JobLease } from '../core/backend.js';
import { type Clock, systemClock, type TimerClock } from '../core/clock.js';
import { newId } from '../core/token.js';

export type { JobLease } from '../core/backend.js';

interface Held {
  token: string;
  expiresAt: number;
}

/** How many of the oldest keys each acquire looks at for expiry: bounded work per call. */
const PRUNE_PER_CALL = 8;

/**
 * A JobLease for one process: what the memory backend offers and what tests share
 * between several Schedulers to play a cluster. Expiry follows the given clock.
 * @example
 * const lease = memoryJobLease({ clock });
 * const a = new Scheduler({ clock, lease }), b = new Scheduler({ clock, lease });
 */
export function memoryJobLease(opts: { clock?: Clock } = {}): JobLease {
  const clock = opts.clock ?? systemClock;
  // Insertion order is (re)grant order, so expired keys gather at the front. The Scheduler
  // never releases slot keys (that is what makes a slot run once), so without this prune
  // the map would grow by one key per job per slot forever.
  const held = new Map<string, Held>();

  const prune = (now: number): void => {
    let n = 0;
    for (const [key, h] of held) {
      if (n++ >= PRUNE_PER_CALL || h.expiresAt > now) break;
      held.delete(key);
    }
  };

  const live = (key: string, now: number): Held | undefined => {
    const h = held.get(key);
    return h && h.expiresAt > now ? h : undefined;
  };

  return {
    async acquire(key, ttlMs) {
      const now = clock.now();
      prune(now);
      if (live(key, now)) return null;
      const token = newId();
      held.delete(key);
      held.set(key, { token, expiresAt: now + ttlMs });
      return token;
    },
    async renew(key, token, ttlMs) {
      const now = clock.now();
      const h = live(key, now);
      if (!h || h.token !== token) return false;
      held.delete(key);
      held.set(key, { token, expiresAt: now + ttlMs });
      return true;
    },
    async release(key, token) {
      if (held.get(key)?.token === token) held.delete(key);
    },
    close() {
      held.clear();
    },
  };
}

/**
 * Renews `key` every ttl/2 until the returned function is called, so that a run longer
 * than its lease keeps it. `onProblem` hears of a failed renewal, or of a lost key (no error).
 */
export function keepRenewed(
  clock: TimerClock,
  lease: JobLease,
  key: string,
  token: string,
  ttlMs: number,
  onProblem: (err?: unknown) => void,
): () => void {
  let stopped = false;
  let timer: unknown;
  const next = (): void => {
    if (!stopped) timer = clock.setTimer(tick, Math.max(1, Math.floor(ttlMs / 2)));
  };
  const tick = (): void => {
    lease.renew(key, token, ttlMs).then(
      (ok) => (ok ? next() : onProblem()), // lost: another holder has it now, nothing to renew
      (err: unknown) => {
        onProblem(err);
        next();
      },
    );
  };
  next();
  return () => {
    stopped = true;
    clock.clearTimer(timer);
  };
}
