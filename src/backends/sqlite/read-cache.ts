import type { SessionRecord } from '../../session.js';

/**
 * Recently read sessions, kept coherent with the file: `sync()` drops everything as soon
 * as another connection (any process) committed, which `PRAGMA data_version` tells in
 * one cheap call; this connection's own writes forget the ids they touch. So a hit is
 * never staler than a fresh SELECT would be.
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

  constructor(
    max: number,
    private readonly dataVersion: () => number,
  ) {
    this.half = Math.max(1, Math.ceil(max / 2));
    this.seen = dataVersion();
  }

  /** Call before serving a hit: forgets everything when someone else wrote since the last look. */
  sync(): void {
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
