import type { Clock } from '../clock.js';

interface Window {
  start: number;
  failures: number;
}

/**
 * Counts failed token checks per client address in fixed windows. Memory is bounded: beyond
 * `maxAddresses` the address seen least recently is forgotten (a Map keeps insertion order,
 * and each failure re-inserts its address at the end).
 * @example
 * const limiter = new FailureLimiter({ max: 600, windowMs: 60_000 });
 * if (limiter.retryAfter(ip) > 0) reply429(); else if (!valid) limiter.fail(ip);
 */
export class FailureLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly opts: { max: number; windowMs: number; maxAddresses?: number },
    private readonly clock: Clock = { now: () => Date.now() },
  ) {}

  /** Milliseconds until `address` may try again; 0 when it is not limited. */
  retryAfter(address: string): number {
    const w = this.windows.get(address);
    if (!w) return 0;
    const now = this.clock.now();
    if (now - w.start >= this.opts.windowMs) {
      this.windows.delete(address);
      return 0;
    }
    return w.failures >= this.opts.max ? w.start + this.opts.windowMs - now : 0;
  }

  /** Records one failed check from `address`. */
  fail(address: string): void {
    const now = this.clock.now();
    let w = this.windows.get(address);
    if (w) this.windows.delete(address);
    if (!w || now - w.start >= this.opts.windowMs) w = { start: now, failures: 0 };
    w.failures++;
    this.windows.set(address, w);
    if (this.windows.size > (this.opts.maxAddresses ?? 100_000)) {
      const oldest = this.windows.keys().next();
      if (!oldest.done) this.windows.delete(oldest.value);
    }
  }

  /** Addresses being tracked (for tests and metrics). */
  get size(): number {
    return this.windows.size;
  }
}
