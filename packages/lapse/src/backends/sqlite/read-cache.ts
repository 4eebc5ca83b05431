import { GenerationalMap } from '../../util/generational-map.js';
import type { SessionRecord } from '../../core/session.js';

/** One miss in this many is kept (see admit). */
const ADMIT_EVERY = 8;

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
  /** null: known to be absent (see admitMissing). */
  private readonly records: GenerationalMap<string, SessionRecord | null>;
  private seen: number;
  /** Until when (monotonic ms) the last look at data_version holds. */
  private freshUntil = Number.NEGATIVE_INFINITY;
  private misses = 0;

  constructor(
    max: number,
    private readonly dataVersion: () => number,
    private readonly recheckMs = 0,
    private readonly monotonic: () => number = () => performance.now(),
  ) {
    this.records = new GenerationalMap(max);
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
    return this.records.has(id);
  }

  /** The cached record, null when the id is known to be absent, undefined when not cached. */
  get(id: string): SessionRecord | null | undefined {
    return this.records.get(id);
  }

  set(rec: SessionRecord): void {
    this.records.set(rec.id, rec);
  }

  /**
   * Offers a record just read from the file: one miss in ADMIT_EVERY is kept. A session read
   * again and again (the usual request path) gets in after a few reads; a stream of sessions
   * each read once (a scan, uniform traffic over many more sessions than fit) mostly does not,
   * so it never churns the cache. Keeping every miss cost uniform validates ~30 % here: each
   * kept record outlives a few young-generation GCs and is promoted, for nothing.
   */
  admit(rec: SessionRecord): void {
    if (++this.misses % ADMIT_EVERY === 0) this.set(rec);
  }

  /**
   * Offers an id just found absent, on the same terms as admit(): an id probed again and again
   * is then answered from the cache like a live one read again and again, so the time a read
   * takes does not tell whether an id is live. Every write forgets the ids it touches, and a
   * commit by anyone else clears the cache, so an absent entry never hides a new session.
   */
  admitMissing(id: string): void {
    if (++this.misses % ADMIT_EVERY === 0) this.records.set(id, null);
  }

  delete(id: string): void {
    this.records.delete(id);
  }

  clear(): void {
    this.records.clear();
  }

  get size(): number {
    return this.records.size;
  }
}
