import type { Clock } from 'lapse/internal';
import type { FailureLimit } from 'lapse/internal';

export type { FailureLimit } from 'lapse/internal';

/** FailureLimiter's settings. */
export interface FailureLimitOptions {
  /** Failures per address per window; the failure that reaches it answers 429. */
  max: number;
  windowMs: number;
  /** Failures per (address, session id) per window; past it that pair's failures answer 429; default min(max, 10). */
  pairMax?: number;
  /** Addresses and pairs remembered at most, each (the least recently failing are forgotten first); default 100,000. */
  maxEntries?: number;
}

interface Window {
  start: number;
  failures: number;
}

/**
 * Fixed-window failure counts, per address and per (address, session id). Only failures are
 * limited: every token is checked, a valid one is served, and a failure past either budget
 * answers 429 instead of 401 (see docs/http.md, "Failed checks"). Memory is bounded:
 * each table keeps at most `maxEntries`, forgetting the entry that failed least recently (a
 * Map keeps insertion order, and each failure re-inserts its key at the end).
 * @example
 * const limiter = new FailureLimiter({ max: 600, windowMs: 60_000 });
 * const sid = parseToken(token)?.id ?? null;
 * if (!(await store.validate(token))) limiter.fail(ip, sid) > 0 ? reply429() : reply401();
 */
export class FailureLimiter implements FailureLimit {
  private readonly addresses = new Map<string, Window>();
  private readonly pairs = new Map<string, Window>();
  private readonly pairMax: number;
  private readonly maxEntries: number;

  constructor(
    private readonly opts: FailureLimitOptions,
    private readonly clock: Clock = { now: () => Date.now() },
  ) {
    this.pairMax = opts.pairMax ?? Math.min(opts.max, 10);
    this.maxEntries = opts.maxEntries ?? 100_000;
  }

  /** Records a failed check; ms to wait when the address or the pair is now at its limit, else 0. */
  fail(address: string, sessionId: string | null): number {
    const now = this.clock.now();
    const pair = this.count(this.pairs, pairKey(address, sessionId), now);
    const addr = this.count(this.addresses, address, now);
    const waits = [pair.failures >= this.pairMax ? pair : null, addr.failures >= this.opts.max ? addr : null];
    let wait = 0;
    for (const w of waits) if (w) wait = Math.max(wait, w.start + this.opts.windowMs - now);
    return wait;
  }

  /** Addresses and pairs being tracked (for tests and metrics). */
  get size(): number {
    return this.addresses.size + this.pairs.size;
  }

  private count(table: Map<string, Window>, key: string, now: number): Window {
    let w = table.get(key);
    if (w) table.delete(key);
    if (!w || now - w.start >= this.opts.windowMs) w = { start: now, failures: 0 };
    w.failures++;
    table.set(key, w);
    if (table.size > this.maxEntries) {
      const oldest = table.keys().next();
      if (!oldest.done) table.delete(oldest.value);
    }
    return w;
  }
}

/** One key per pair; a newline appears in neither an address nor a session id. */
function pairKey(address: string, sessionId: string | null): string {
  return sessionId === null ? `${address}\n` : `${address}\n${sessionId}`;
}
