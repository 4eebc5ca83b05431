import type { SessionRecord } from '../../session.js';

/**
 * Recently read sessions, kept coherent with the file: `sync()` drops everything once
 * another connection (any process) committed, which `PRAGMA data_version` tells; this
 * connection's own writes forget the ids they touch, so they are seen at once.
 *
 * `PRAGMA data_version` opens a read transaction (two lock calls on the WAL index), which
 * costs as much as the SELECT it saves. So an answer holds for `recheckMs` (default 1 ms):
 * a commit by another process reaches this cache's hits within that long. 0 asks before
 * every hit.
 */
export class ReadCache {
  // Two generations instead of one ordered Map: when the young one is full it becomes the
  // old one and the previous old one is dropped whole. Keeps between max/2 and max records,
  // approximates LRU, and costs O(1) per call with no iteration (evicting from the front
  // of a Map one key at a time leaves deleted slots that every keys().next() walks over).
  private young = new Map<string, SessionRecord>();
  private old = new Map<string, SessionRecord>();
  private readonly half: number;
  private seen: number;
  /** Until when (monotonic ms) the last look at data_version holds. */
  private freshUntil = Number.NEGATIVE_INFINITY;

  constructor(
    max: number,
    private readonly dataVersion: () => number,
    private readonly recheckMs = 0,
    private readonly monotonic: () => number = () => performance.now(),
  ) {
    this.half = Math.max(1, Math.ceil(max / 2));
    this.seen = dataVersion();
  }

  /** Call before serving a hit: forgets everything when someone else wrote since the last look. */
  sync(): void {
    if (this.recheckMs > 0) {
      const t = this.monotonic();
      if (t < this.freshUntil) return;
      this.freshUntil = t + this.recheckMs;
    }
    const v = this.dataVersion();
    if (v !== this.seen) {
      this.clear();
      this.seen = v;
    }
  }

  has(id: string): boolean {
    return this.young.has(id) || this.old.has(id);
  }

  get(id: string): SessionRecord | undefined {
    const rec = this.young.get(id);
    if (rec !== undefined) return rec;
    const aging = this.old.get(id);
    if (aging !== undefined) {
      // Used again: back into the young generation, so it survives the next turnover.
      this.old.delete(id);
      this.put(aging);
    }
    return aging;
  }

  set(rec: SessionRecord): void {
    this.old.delete(rec.id);
    this.put(rec);
  }

  delete(id: string): void {
    this.young.delete(id);
    this.old.delete(id);
  }

  clear(): void {
    if (this.young.size > 0) this.young = new Map();
    if (this.old.size > 0) this.old = new Map();
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  private put(rec: SessionRecord): void {
    this.young.set(rec.id, rec);
    if (this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Map();
    }
  }
}
