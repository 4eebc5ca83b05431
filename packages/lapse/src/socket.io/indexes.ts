/**
 * key -> set of socket ids, exact: a key whose last socket leaves is deleted, so the
 * index never holds an empty set or a dead socket, and its size is the number of live keys.
 */
export class SidIndex {
  private readonly map = new Map<string, Set<string>>();

  /** Live keys (users, rooms or sessions with at least one socket). */
  get size(): number {
    return this.map.size;
  }

  /** Adds a socket under a key; false when it was there already. */
  add(key: string, sid: string): boolean {
    const set = this.map.get(key);
    if (!set) {
      this.map.set(key, new Set([sid]));
      return true;
    }
    if (set.has(sid)) return false;
    set.add(sid);
    return true;
  }

  /** Removes a socket from a key; false when it was not there. */
  delete(key: string, sid: string): boolean {
    const set = this.map.get(key);
    if (!set?.delete(sid)) return false;
    if (set.size === 0) this.map.delete(key);
    return true;
  }

  /** The sockets under a key (empty when none). */
  get(key: string): ReadonlySet<string> {
    return this.map.get(key) ?? EMPTY;
  }

  /** How many sockets are under a key. */
  count(key: string): number {
    return this.map.get(key)?.size ?? 0;
  }

  /** [key, socket count] for every live key. */
  *counts(): IterableIterator<[string, number]> {
    for (const [key, set] of this.map) yield [key, set.size];
  }

  /** Moves every socket from one key to another (a rotated session id). */
  rename(from: string, to: string): void {
    const set = this.map.get(from);
    if (!set) return;
    this.map.delete(from);
    const target = this.map.get(to);
    if (target) for (const sid of set) target.add(sid);
    else this.map.set(to, set);
  }

  clear(): void {
    this.map.clear();
  }
}

const EMPTY: ReadonlySet<string> = new Set();

/** The three exact indexes of the tracker. */
export class Indexes {
  readonly users = new SidIndex();
  readonly rooms = new SidIndex();
  readonly sessions = new SidIndex();

  clear(): void {
    this.users.clear();
    this.rooms.clear();
    this.sessions.clear();
  }
}
