import type { TimerClock } from '../core/clock.js';

/** What the index orders: the entry carries its own key and position (no wrapper object per entry). */
export interface Scheduled {
  /** When the index hands the entry back. */
  due: number;
  /** Position in the heap array; -1 when not in the index. */
  hi: number;
}

/**
 * A binary min-heap on `due` whose entries know their position, so any entry is moved or
 * removed in O(log n). Unlike the store's lazy ExpiryQueue, removal is eager: a socket that
 * is gone must not stay referenced by the index until its old deadline comes up.
 */
class DeadlineHeap<T extends Scheduled> {
  private a: T[] = [];

  get size(): number {
    return this.a.length;
  }

  peek(): T | undefined {
    return this.a[0];
  }

  push(d: T): void {
    d.hi = this.a.length;
    this.a.push(d);
    this.up(d.hi);
  }

  /** Call after changing `d.due`. */
  update(d: T): void {
    if (d.hi < 0) return;
    this.up(d.hi);
    this.down(d.hi);
  }

  remove(d: T): void {
    const i = d.hi;
    if (i < 0) return;
    const last = this.a.pop() as T;
    d.hi = -1;
    if (i < this.a.length) {
      this.a[i] = last;
      last.hi = i;
      this.update(last);
    }
  }

  clear(): void {
    for (const d of this.a) d.hi = -1;
    this.a = [];
  }

  private up(i: number): void {
    const a = this.a;
    const d = a[i] as T;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p] as T;
      if (parent.due <= d.due) break;
      a[i] = parent;
      parent.hi = i;
      i = p;
    }
    a[i] = d;
    d.hi = i;
  }

  private down(i: number): void {
    const a = this.a;
    const n = a.length;
    const d = a[i] as T;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && (a[r] as T).due < (a[l] as T).due ? r : l;
      const child = a[c] as T;
      if (child.due >= d.due) break;
      a[i] = child;
      child.hi = i;
      i = c;
    }
    a[i] = d;
    d.hi = i;
  }
}

/**
 * Entries ordered by their next deadline (a min-heap), with one timer for the earliest.
 * Due values are found by looking at the top of the heap only, never by a scan, and the
 * timer fires at most once per `tick` so that many close deadlines cost one wake-up.
 * Deadlines may be moved later lazily: the timer then wakes early and finds nothing due.
 */
export class DeadlineIndex<T extends Scheduled> {
  private readonly heap = new DeadlineHeap<T>();
  private timer: unknown;
  private timerAt = Number.POSITIVE_INFINITY;
  private lastFireAt = Number.NEGATIVE_INFINITY;
  private closed = false;

  constructor(
    private readonly clock: TimerClock,
    private readonly tick: number,
    private readonly onDue: (now: number) => void,
  ) {}

  get size(): number {
    return this.heap.size;
  }

  /** Whether the wake-up timer is set (for leak checks). */
  get armed(): boolean {
    return this.timer !== undefined;
  }

  add(d: T, at: number): void {
    d.due = at;
    this.heap.push(d);
    this.arm();
  }

  /** Sets a new deadline (earlier or later). */
  move(d: T, at: number): void {
    if (d.hi < 0 || d.due === at) return;
    d.due = at;
    this.heap.update(d);
    this.arm();
  }

  remove(d: T): void {
    this.heap.remove(d);
    // Nothing left to wait for: no timer either.
    if (this.heap.size === 0) this.disarm();
  }

  /** The entry with the earliest deadline if that deadline is at or before `now`. */
  due(now: number): T | undefined {
    const top = this.heap.peek();
    return top && top.due <= now ? top : undefined;
  }

  /** Sets the timer for the earliest deadline unless one is already set for that time or earlier. */
  arm(): void {
    const top = this.heap.peek();
    if (this.closed || !top) return;
    const at = Math.max(top.due, this.lastFireAt + this.tick);
    if (at >= this.timerAt) return;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timerAt = at;
    this.timer = this.clock.setTimer(() => this.fire(), at - this.clock.now());
  }

  /** Clears the timer and forgets every entry. */
  close(): void {
    this.closed = true;
    this.disarm();
    this.heap.clear();
  }

  private disarm(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = this.clock.now();
    this.lastFireAt = now;
    try {
      this.onDue(now);
    } finally {
      this.arm();
    }
  }
}
