/** An entry the heap can find again in O(1): it keeps its own position. */
export interface HeapItem {
  expiresAt: number;
  /** Position in the heap array; -1 when not in the heap. */
  hi: number;
}

/**
 * A binary min-heap ordered by `expiresAt`, with O(log n) update and removal of any
 * item. The memory backend's expiry index: the sweep pops only what has expired.
 */
export class ExpiryHeap<T extends HeapItem> {
  private a: T[] = [];

  get size(): number {
    return this.a.length;
  }

  peek(): T | undefined {
    return this.a[0];
  }

  push(item: T): void {
    item.hi = this.a.length;
    this.a.push(item);
    this.up(item.hi);
  }

  /** Call after changing `item.expiresAt`. */
  update(item: T): void {
    if (item.hi < 0) return;
    this.up(item.hi);
    this.down(item.hi);
  }

  remove(item: T): void {
    const i = item.hi;
    if (i < 0) return;
    const last = this.a.pop() as T;
    item.hi = -1;
    if (i < this.a.length) {
      this.a[i] = last;
      last.hi = i;
      this.up(i);
      this.down(last.hi);
    }
  }

  /** How many items have expiresAt <= now, visiting only those (O(k)). */
  countDue(now: number): number {
    let n = 0;
    const stack = [0];
    while (stack.length > 0) {
      const i = stack.pop() as number;
      const item = this.a[i];
      if (!item || item.expiresAt > now) continue;
      n++;
      stack.push(2 * i + 1, 2 * i + 2);
    }
    return n;
  }

  clear(): void {
    for (const item of this.a) item.hi = -1;
    this.a = [];
  }

  private up(i: number): void {
    const a = this.a;
    const item = a[i] as T;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p] as T;
      if (parent.expiresAt <= item.expiresAt) break;
      a[i] = parent;
      parent.hi = i;
      i = p;
    }
    a[i] = item;
    item.hi = i;
  }

  private down(i: number): void {
    const a = this.a;
    const n = a.length;
    const item = a[i] as T;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && (a[r] as T).expiresAt < (a[l] as T).expiresAt) c = r;
      const child = a[c] as T;
      if (child.expiresAt >= item.expiresAt) break;
      a[i] = child;
      child.hi = i;
      i = c;
    }
    a[i] = item;
    item.hi = i;
  }
}
