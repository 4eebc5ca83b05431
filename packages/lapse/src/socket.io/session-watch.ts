import type { TimerClock } from '../core/clock.js';
import { DeadlineIndex, type Scheduled } from './deadlines.js';

interface Watched extends Scheduled {
  id: string;
}

/**
 * When each session with live sockets on this node is due to expire, in a deadline index
 * with one timer. A silent socket sends nothing, so nothing else would find out that its
 * session ran out before a sweep (possibly on another node) removes it: at the session's
 * expiry time `onDue` re-reads it, and either ends its sockets or moves the check to the
 * new expiry (another node may have slid it).
 */
export class SessionWatch {
  private readonly byId = new Map<string, Watched>();
  private readonly index: DeadlineIndex<Watched>;

  constructor(
    clock: TimerClock,
    tick: number,
    private readonly onDue: (sessionId: string) => void,
  ) {
    this.index = new DeadlineIndex(clock, tick, (now) => this.fire(now));
  }

  /** Sessions being watched (for leak checks). */
  get size(): number {
    return this.byId.size;
  }

  /** Checks `sessionId` at `expiresAt` (or earlier, when already watched with an earlier time). */
  watch(sessionId: string, expiresAt: number): void {
    const w = this.byId.get(sessionId);
    if (w) {
      this.index.move(w, expiresAt);
      return;
    }
    const entry: Watched = { id: sessionId, due: 0, hi: -1 };
    this.byId.set(sessionId, entry);
    this.index.add(entry, expiresAt);
  }

  /** The session's last socket here has gone. */
  unwatch(sessionId: string): void {
    const w = this.byId.get(sessionId);
    if (!w) return;
    this.byId.delete(sessionId);
    this.index.remove(w);
  }

  /** Clears the timer and forgets every session. */
  close(): void {
    this.index.close();
    this.byId.clear();
  }

  private fire(now: number): void {
    for (let w = this.index.due(now); w; w = this.index.due(now)) {
      // Off the index until the check answers: onDue watches it again or ends it.
      this.byId.delete(w.id);
      this.index.remove(w);
      this.onDue(w.id);
    }
  }
}
