/**
 * A min-priority queue of (due time, item) in two parallel arrays. Comparisons read only
 * the packed number array, never the items, so a sift does not chase pointers across a
 * large heap. Removal is lazy: the owner skips items that are no longer current when they
 * reach the top, and re-queues items whose expiry moved later.
 */
export class ExpiryQueue<T> {
  private keys: number[] = [];
  private items: T[] = [];

  get size(): number {
    return this.keys.length;
  }

  peekKey(): number | undefined {
    return this.keys[0];
  }

  peekItem(): T | undefined {
    return this.items[0];
  }

  push(key: number, item: T): void {
    const keys = this.keys;
    const items = this.items;
    let i = keys.length;
    keys.push(key);
    items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pk = keys[p] as number;
      if (pk <= key) break;
      keys[i] = pk;
      items[i] = items[p] as T;
      i = p;
    }
    keys[i] = key;
    items[i] = item;
  }

  pop(): T | undefined {
    const keys = this.keys;
    const items = this.items;
    const top = items[0];
    const lastKey = keys.pop();
    const lastItem = items.pop() as T;
    const n = keys.length;
    if (n === 0 || lastKey === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && (keys[r] as number) < (keys[l] as number) ? r : l;
      const ck = keys[c] as number;
      if (ck >= lastKey) break;
      keys[i] = ck;
      items[i] = items[c] as T;
      i = c;
    }
    keys[i] = lastKey;
    items[i] = lastItem;
    return top;
  }

  /** Counts items with key <= now for which `test` holds, visiting only those (O(k)). */
  countDue(now: number, test: (item: T) => boolean): number {
    let n = 0;
    const stack = [0];
    while (stack.length > 0) {
      const i = stack.pop() as number;
      const key = this.keys[i];
      if (key === undefined || key > now) continue;
      if (test(this.items[i] as T)) n++;
      stack.push(2 * i + 1, 2 * i + 2);
    }
    return n;
  }

  clear(): void {
    this.keys = [];
    this.items = [];
  }
}
