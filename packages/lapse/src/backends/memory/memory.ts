import sortedBtree from 'sorted-btree';
import type { Backend, BackendHealth, BackendStats, InsertPolicy, JobLease, UserCount } from '../../core/backend.js';
import { type Clock, type TimerClock, timerClock } from '../../core/clock.js';
import { parsePositiveDuration, type Duration } from '../../core/duration.js';
import { errors, LapseError } from '../../core/errors.js';
import { memoryJobLease } from '../../scheduler/lease.js';
import { defaultLogger, type Logger } from '../../util/logger.js';
import {
  activeLock,
  type Ended,
  type EndReason,
  expiresAtOf,
  expiryReason,
  type LockState,
  type SessionRecord,
} from '../../core/session.js';
import type { ParsedSlot } from '../../core/parsed-data.js';
import { ExpiryQueue } from '../../util/expiry-queue.js';
import { SnapshotFile } from './snapshot.js';

type BTreeClass = typeof sortedBtree.default;
// A CommonJS module: Node gives its exports object as the default import, vitest the class itself.
const BTree: BTreeClass = (sortedBtree as { default?: BTreeClass }).default ?? (sortedBtree as unknown as BTreeClass);

/** A stored session plus its parsed data. A class, so every entry shares one compact hidden class. */
class Entry implements SessionRecord, ParsedSlot {
  id: string;
  secretHash: string;
  userId: string | null;
  data: string;
  createdAt: number;
  lastAccessedAt: number;
  expiresAt: number;
  absoluteExpiresAt: number;
  idleTimeout: number;
  accessCount: number;
  version: number;
  lock: LockState | null;
  ip: string | null;
  userAgent: string | null;
  /**
   * Neighbours in recency order (least recently used first), across all sessions: a touch
   * moves an entry in O(1), without re-inserting it into the id map. A removed entry points
   * to itself (see `dropped`).
   */
  lruPrev: Entry | undefined = undefined;
  lruNext: Entry | undefined = undefined;
  /**
   * Neighbours in its user's list (in no order: an entry is appended when added and never moved,
   * so a touch does not reach two more entries), found by user id in byUser: O(1) unlinking.
   */
  userPrev: Entry | undefined = undefined;
  userNext: Entry | undefined = undefined;
  /** The store's parsed, frozen copy of `data` (ParsedSlot): null until read, and again after every write of data. */
  parsedData: unknown = null;

  /** True once removed from the backend: the expiry queue skips it without a Map lookup. */
  get dropped(): boolean {
    return this.lruNext === this;
  }

  constructor(r: SessionRecord) {
    this.id = r.id;
    this.secretHash = r.secretHash;
    this.userId = r.userId;
    this.data = r.data;
    this.createdAt = r.createdAt;
    this.lastAccessedAt = r.lastAccessedAt;
    this.expiresAt = r.expiresAt;
    this.absoluteExpiresAt = r.absoluteExpiresAt;
    this.idleTimeout = r.idleTimeout;
    this.accessCount = r.accessCount;
    this.version = r.version;
    this.lock = r.lock;
    this.ip = r.ip;
    this.userAgent = r.userAgent;
  }
}

/** Most recently used first (a stable sort: ties keep the order they come in). */
function lastAccessedDesc(a: Entry, b: Entry): number {
  return b.lastAccessedAt - a.lastAccessedAt;
}

/**
 * One user's sessions, linked through the entries themselves, in the order they were added (not
 * recency: lastAccessedAt orders them where it matters, see listUser and capUser).
 */
class UserList {
  head: Entry | undefined = undefined;
  tail: Entry | undefined = undefined;
  size = 0;

  append(e: Entry): void {
    e.userPrev = this.tail;
    e.userNext = undefined;
    if (this.tail) this.tail.userNext = e;
    else this.head = e;
    this.tail = e;
    this.size++;
  }

  unlink(e: Entry): void {
    if (e.userPrev) e.userPrev.userNext = e.userNext;
    else this.head = e.userNext;
    if (e.userNext) e.userNext.userPrev = e.userPrev;
    else this.tail = e.userPrev;
    e.userPrev = undefined;
    e.userNext = undefined;
    this.size--;
  }
}

/**
 * The entries by id, in 64 Maps chosen by the id's first and last characters: a V8 Map rehashes all its
 * entries when it shrinks to a quarter, and a sweep of a million sessions would block the
 * event loop for tens of ms each time; 64 smaller Maps rehash a 64th each. An entry the sweep
 * removes stays in its Map (marked dropped), skipped by get(), until the backend empties (all
 * Maps dropped at once) or the background walk over byOrder takes it out (deleteRemoved):
 * a Map delete per swept entry was about 40% of a sweep.
 */
class IdMap {
  private readonly shards: Map<string, Entry>[] = Array.from({ length: 64 }, () => new Map());
  /** Live entries (the Maps also hold the removed ones not yet taken out). */
  size = 0;

  private shard(id: string): Map<string, Entry> {
    // A random base64url id's first character is uniform over 64 (its last one carries 2 bits);
    // the last one spreads ids a caller numbers ('s1', 's2'…).
    return this.shards[(id.charCodeAt(0) + 5 * id.charCodeAt(id.length - 1)) & 63] as Map<string, Entry>;
  }

  /**
   * The entry of `id`, live or not, or a removed one still in its Map: that one's expiresAt is
   * -Infinity (see drop), so a caller's `expiresAt > now` check turns it away with no other read.
   */
  get(id: string): Entry | undefined {
    return this.shard(id).get(id);
  }

  /** Whether an entry that was not removed has this id. */
  has(id: string): boolean {
    const e = this.shard(id).get(id);
    return e !== undefined && !e.dropped;
  }

  set(id: string, e: Entry): void {
    const m = this.shard(id);
    const old = m.get(id);
    m.set(id, e);
    if (old === undefined || old.dropped) this.size++;
  }

  /** Takes out the live entry of `id` (a removed one of the same id was replaced by it in set()). */
  delete(id: string): void {
    if (this.shard(id).delete(id)) this.size--;
  }

  /** A live entry removed (already marked dropped) but left in its Map, for later. */
  removeLazily(): void {
    this.size--;
  }

  /** Takes out `e`, a removed entry left in its Map, unless an entry of the same id replaced it. */
  deleteRemoved(e: Entry): void {
    const m = this.shard(e.id);
    if (m.get(e.id) === e) m.delete(e.id);
  }

  clear(): void {
    for (let i = 0; i < this.shards.length; i++) if ((this.shards[i] as Map<string, Entry>).size > 0) this.shards[i] = new Map();
    this.size = 0;
  }
}

/** Removed entries left in the id index before a background walk takes them out (and at least as many as the live ones). */
const COMPACT_MIN = 1024;
/** Entries the background walk visits per turn of the event loop (a few ms). */
const COMPACT_STEP = 4096;

export interface MemoryOptions {
  /**
   * Persist to a file: written every `interval` (default '1m') and on close, restored on start.
   * A checkpoint: what changed after the last snapshot is lost if the process dies without close().
   */
  snapshot?: { path: string; interval?: Duration };
  /** Clock used to drop expired sessions on restore and to time snapshots (the store passes `now` everywhere else). */
  clock?: Clock;
  logger?: Logger;
}

/** How the snapshots are going (see MemoryBackend.snapshotState). */
export interface SnapshotState {
  writing: boolean;
  /** Writes finished, successful or not. */
  writes: number;
  failures: number;
  /** Intervals skipped because the previous write was still going. */
  skipped: number;
  lastSuccessAt: number | null;
  /** Message of the last write, when it failed. */
  lastError: string | null;
}

/**
 * The in-process backend: a Map for O(1) lookups, a list through the entries in LRU order,
 * an expiry queue (min-heap on expiresAt, lazily maintained) for the sweep, and a per-user index. Optional snapshots.
 * @example
 * const store = createStore({ backend: memory({ snapshot: { path: './sessions.snap' } }) });
 */
export function memory(options: MemoryOptions = {}): MemoryBackend {
  return new MemoryBackend(options);
}

export class MemoryBackend implements Backend {
  readonly name = 'memory';
  private byId = new IdMap();
  /** Recency: the least recently used entry (evicted first) and the most recent one, linked through the entries. */
  private lruHead: Entry | undefined = undefined;
  private lruTail: Entry | undefined = undefined;
  private byUser = new Map<string, UserList>();
  /** User id order, for scanUsers(): the same lists as byUser. */
  private userOrder = new BTree<string, UserList>();
  /**
   * Id order, for scan(): a B+ tree, so a page costs O(log n + page), never a sort of the map.
   * The sweep leaves the entries it removes in it (one B+ tree delete per entry would cost more
   * than the rest of the sweep): scan() skips them, and they go all at once when no session is
   * left, or by an ordered walk in the background once they are as many as the live ones.
   */
  private byOrder = new BTree<string, Entry>();
  /** Removed entries still in byOrder. */
  private orderGarbage = 0;
  /** The background walk that takes removed entries out of byOrder: where it goes on, and its timer. */
  private compactFrom: string | undefined = undefined;
  private compactTimer: ReturnType<typeof setImmediate> | undefined = undefined;
  /** Expiry index; an entry stays queued at its old time after a touch and is re-queued lazily. */
  private queue = new ExpiryQueue<Entry>();
  /** Leases granted, by id, to count `locked` without a scan. */
  private locks = new Map<string, number>();
  private fence = 0;
  private unlockListeners = new Set<(id: string) => void>();
  private lease: JobLease | undefined;
  private snapshot: SnapshotFile | undefined;
  private readonly snap: SnapshotState = { writing: false, writes: 0, failures: 0, skipped: 0, lastSuccessAt: null, lastError: null };
  private readonly errorListeners = new Set<(err: unknown) => void>();
  private timer: unknown;
  private closed = false;
  private readonly clock: TimerClock;
  private readonly logger: Logger;

  constructor(options: MemoryOptions = {}) {
    this.clock = timerClock(options.clock);
    this.logger = options.logger ?? defaultLogger();
    if (options.snapshot) {
      const every = parsePositiveDuration(options.snapshot.interval ?? '1m', 'snapshot.interval');
      this.snapshot = new SnapshotFile(options.snapshot.path, this.logger, (err) => this.written(err));
      this.snapshot.removeStaleTemps();
      const restored = this.snapshot.read();
      if (restored) {
        const now = this.clock.now();
        this.fence = restored.fence;
        for (const rec of restored.records) if (rec.expiresAt > now) this.add(new Entry(rec));
      }
      this.arm(every);
    }
  }

  insert(rec: SessionRecord, now: number, policy: InsertPolicy, opts: { replace?: boolean; fence?: number } = {}) {
    const ended: Ended[] = [];
    const found = this.byId.get(rec.id);
    const existing = found?.dropped ? undefined : found;
    if (existing && existing.expiresAt > now) {
      if (!opts.replace) throw new LapseError('LAPSE_INVALID_INPUT', `a session with id ${rec.id} exists`);
      this.checkLease(existing, now, opts.fence);
      return { record: this.replaceInPlace(existing, rec, now, policy, ended), ended };
    }
    if (existing) this.end(existing, expiryReason(existing), ended);
    if (rec.userId !== null) this.capUser(rec.userId, now, policy, ended);
    const max = policy.maxSessions;
    if (max !== undefined) {
      while (this.byId.size >= max) {
        const expired = this.soonestExpired(now);
        if (expired) this.end(expired, expiryReason(expired), ended);
        else this.end(this.lruHead as Entry, 'evicted', ended);
      }
    }
    const entry = new Entry(rec);
    this.add(entry);
    return { record: entry, ended };
  }

  /** store.set of a live session (Backend.upsertLive): written into its entry, with no record built first. */
  upsertLive(
    id: string,
    data: string,
    userId: string | null,
    idleTimeout: number,
    now: number,
    policy: InsertPolicy,
    fence: number | undefined,
    ended: Ended[],
  ): SessionRecord | undefined {
    const e = this.byId.get(id);
    // A removed entry still in its Map has expiresAt -Infinity (see IdMap.get).
    if (e === undefined || !(e.expiresAt > now)) return undefined;
    this.checkLease(e, now, fence);
    return this.writeInPlace(e, '', userId, data, now, idleTimeout, null, null, now, policy, ended);
  }

  private replaceInPlace(e: Entry, rec: SessionRecord, now: number, policy: InsertPolicy, ended: Ended[]): Entry {
    return this.writeInPlace(e, rec.secretHash, rec.userId, rec.data, rec.lastAccessedAt, rec.idleTimeout, rec.ip, rec.userAgent, now, policy, ended);
  }

  /**
   * An upsert of a live session, written into its entry: no new object, and the id index
   * (B+ tree) and the expiry queue keep their places. Recency moves to the end, as on a touch.
   */
  private writeInPlace(
    e: Entry,
    secretHash: string,
    userId: string | null,
    data: string,
    lastAccessedAt: number,
    idleTimeout: number,
    ip: string | null,
    userAgent: string | null,
    now: number,
    policy: InsertPolicy,
    ended: Ended[],
  ): Entry {
    const oldUser = e.userId;
    const oldExpiry = e.expiresAt;
    e.secretHash = secretHash;
    this.writeData(e, data);
    e.lastAccessedAt = lastAccessedAt;
    e.idleTimeout = idleTimeout;
    e.expiresAt = expiresAtOf(lastAccessedAt, idleTimeout, e.absoluteExpiresAt);
    e.version++;
    e.ip = ip;
    e.userAgent = userAgent;
    // The queued time must stay a lower bound: an expiry moved earlier is queued again.
    if (e.expiresAt < oldExpiry) this.queue.push(e.expiresAt, e);
    if (userId !== oldUser) {
      const list = oldUser === null ? undefined : this.byUser.get(oldUser);
      if (list) {
        list.unlink(e);
        if (list.size === 0 && oldUser !== null) {
          this.byUser.delete(oldUser);
          this.userOrder.delete(oldUser);
        }
      }
      e.userId = userId;
      if (userId !== null) {
        this.capUser(userId, now, policy, ended);
        this.userListOf(userId).append(e);
      }
    }
    this.bump(e);
    return e;
  }

  /**
   * Writes an entry's data. The same text again (an upsert of unchanged data, the common
   * express-session save) keeps the parsed copy and the old string: nothing to parse again.
   */
  private writeData(e: Entry, data: string): void {
    if (e.data === data) return;
    e.data = data;
    e.parsedData = null;
  }

  get(id: string, now: number): SessionRecord | null {
    const e = this.byId.get(id);
    return e && e.expiresAt > now ? e : null;
  }

  touch(id: string, at: number, accesses: number, now: number): SessionRecord | null {
    const e = this.byId.get(id);
    if (!e || e.expiresAt <= now) return null;
    if (at > e.lastAccessedAt) e.lastAccessedAt = at;
    e.accessCount += accesses;
    // Only later, never earlier: the queued time stays a lower bound and is fixed up lazily.
    e.expiresAt = expiresAtOf(e.lastAccessedAt, e.idleTimeout, e.absoluteExpiresAt);
    this.bump(e);
    return e;
  }

  update(id: string, data: string, now: number, opts: { expectedVersion?: number; fence?: number }): SessionRecord {
    const e = this.live(id, now);
    this.checkLease(e, now, opts.fence);
    if (opts.expectedVersion !== undefined && opts.expectedVersion !== e.version) {
      throw errors.versionConflict(id, e.version, opts.expectedVersion);
    }
    this.writeData(e, data);
    e.version++;
    return e;
  }

  remove(id: string, now: number, opts: { fence?: number; force?: boolean }): SessionRecord | null {
    const e = this.byId.get(id);
    if (!e || e.expiresAt <= now) return null;
    if (!opts.force) this.checkLease(e, now, opts.fence);
    this.drop(e);
    return e;
  }

  rotate(id: string, next: { id: string; secretHash: string }, now: number, opts: { fence?: number }): SessionRecord {
    const e = this.live(id, now);
    this.checkLease(e, now, opts.fence);
    if (this.byId.has(next.id)) throw new LapseError('LAPSE_INVALID_INPUT', `a session with id ${next.id} exists`);
    this.drop(e);
    const moved = new Entry({
      ...e,
      id: next.id,
      secretHash: next.secretHash,
      lastAccessedAt: now,
      expiresAt: expiresAtOf(now, e.idleTimeout, e.absoluteExpiresAt),
      lock: null,
    });
    this.add(moved);
    return moved;
  }

  removeUser(userId: string, now: number, exceptId?: string): Ended[] {
    const ended: Ended[] = [];
    const list = this.byUser.get(userId);
    if (!list) return ended;
    const victims: Entry[] = [];
    for (let e = list.head; e; e = e.userNext) if (e.id !== exceptId) victims.push(e);
    for (const e of victims) this.end(e, e.expiresAt <= now ? expiryReason(e) : 'revoked', ended);
    return ended;
  }

  listUser(userId: string, now: number): SessionRecord[] {
    return this.userByRecency(this.byUser.get(userId), now);
  }

  /**
   * The sessions in a user's list that expire after `after`, most recently used first; among
   * those last used in the same millisecond, the newest added first (collected from the tail,
   * then a stable sort).
   */
  private userByRecency(list: UserList | undefined, after: number): Entry[] {
    const out: Entry[] = [];
    for (let e = list?.tail; e; e = e.userPrev) if (e.expiresAt > after) out.push(e);
    return out.sort(lastAccessedDesc);
  }

  lock(id: string, owner: string, ttlMs: number, now: number): LockState {
    const e = this.live(id, now);
    const held = activeLock(e, now);
    if (held) throw errors.locked(id, held.owner, held.expiresAt);
    e.lock = { owner, fence: ++this.fence, expiresAt: now + ttlMs };
    this.locks.set(id, e.lock.expiresAt);
    return e.lock;
  }

  extendLock(id: string, fence: number, ttlMs: number, now: number): LockState {
    const e = this.live(id, now);
    const held = activeLock(e, now);
    if (!held || held.fence !== fence) throw errors.leaseLost(id, fence);
    held.expiresAt = now + ttlMs;
    this.locks.set(id, held.expiresAt);
    return held;
  }

  unlock(id: string, fence: number, now: number): boolean {
    const e = this.byId.get(id);
    if (!e || e.expiresAt <= now || !e.lock || e.lock.fence !== fence) return false;
    const wasActive = e.lock.expiresAt > now;
    e.lock = null;
    this.locks.delete(id);
    for (const listener of this.unlockListeners) listener(id);
    return wasActive;
  }

  sweep(now: number, limit: number): Ended[] {
    const ended: Ended[] = [];
    while (ended.length < limit) {
      const e = this.soonestExpired(now);
      if (!e) break;
      ended.push({ id: e.id, userId: e.userId, reason: expiryReason(e) });
      this.drop(e, true);
    }
    if (this.orderGarbage > 0) {
      if (this.byId.size === 0) {
        this.byId.clear();
        this.clearOrder();
      }
      // Only once the sweep has caught up: a sweep that goes on may still empty the backend.
      else if (ended.length < limit && this.orderGarbage >= Math.max(COMPACT_MIN, this.byId.size)) this.compactSoon();
    }
    return ended;
  }

  count(now: number): number {
    return this.byId.size - this.queue.countDue(now, (e) => !e.dropped && e.expiresAt <= now);
  }

  stats(now: number): BackendStats {
    for (const [id, until] of this.locks) if (until <= now) this.locks.delete(id);
    const stats: BackendStats = { sessions: this.byId.size, users: this.byUser.size, locked: this.locks.size };
    if (this.snapshot) stats.snapshot = { failures: this.snap.failures, lastSuccessAt: this.snap.lastSuccessAt };
    return stats;
  }

  /** Degraded while the last snapshot failed: the sessions are served, but a crash would lose them. */
  health(): BackendHealth {
    if (this.closed) return { ok: false, reason: 'memory backend is closed' };
    if (this.snap.lastError === null) return { ok: true };
    return { ok: false, reason: `memory snapshot to ${this.snapshot?.path} failing: ${this.snap.lastError}` };
  }

  /** Counters of the snapshot writes, for diagnostics and tests. */
  snapshotState(): SnapshotState {
    return { ...this.snap, writing: this.snapshot?.busy === true };
  }

  /** From the id index: O(log n + page), plus the expired entries in the range that the sweep has not removed yet. */
  scan(afterId: string | null, limit: number, now: number): SessionRecord[] {
    const out: Entry[] = [];
    if (!(limit > 0)) return out;
    // values(from) starts at `from` itself when it is an id: the cursor is exclusive.
    for (const e of this.byOrder.values(afterId ?? undefined)) {
      if (e.id === afterId || e.expiresAt <= now || e.dropped) continue;
      if (out.push(e) >= limit) break;
    }
    return out;
  }

  /** From the user id index: O(log users + limit). */
  scanUsers(prefix: string, afterUserId: string | null, limit: number, _now: number): UserCount[] {
    const out: UserCount[] = [];
    if (!(limit > 0)) return out;
    const from = afterUserId !== null && afterUserId > prefix ? afterUserId : prefix;
    for (const [userId, list] of this.userOrder.entries(from)) {
      if (userId === afterUserId) continue;
      if (!userId.startsWith(prefix)) break;
      if (out.push({ userId, sessions: list.size }) >= limit) break;
    }
    return out;
  }

  clear(): void {
    this.byId.clear();
    this.lruHead = undefined;
    this.lruTail = undefined;
    this.clearOrder();
    this.byUser.clear();
    this.userOrder.clear();
    this.queue.clear();
    this.locks.clear();
  }

  ping(): void {
    if (this.closed) throw errors.closed('memory backend');
  }

  onError(listener: (err: unknown) => void): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  onUnlock(listener: (id: string) => void): () => void {
    this.unlockListeners.add(listener);
    return () => this.unlockListeners.delete(listener);
  }

  jobLease(): JobLease {
    this.lease ??= memoryJobLease({ clock: this.clock });
    return this.lease;
  }

  /**
   * Writes a snapshot now (no-op without the snapshot option); rejects when it fails. During
   * a write it waits for it and then one more, with the state as it is then.
   */
  async save(): Promise<void> {
    await this.snapshot?.write(() => ({ fence: this.fence, records: this.byRecency() }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.stopCompacting();
    this.unlockListeners.clear();
    try {
      await this.save();
    } finally {
      this.errorListeners.clear();
    }
  }

  /** The periodic snapshot: one timer at a time, re-armed after each tick. */
  private arm(every: number): void {
    this.timer = this.clock.setTimer(() => {
      this.tick();
      if (!this.closed) this.arm(every);
    }, every);
  }

  private tick(): void {
    if (this.snapshot?.busy) {
      // A write longer than the interval: skip rather than queue, or saves would stack.
      if (this.snap.skipped++ === 0 || this.snap.skipped % 100 === 0) {
        this.logger.warn({ path: this.snapshot.path, skipped: this.snap.skipped }, 'memory snapshot still writing; interval skipped');
      }
      return;
    }
    // A failure is reported by written(); nobody awaits a periodic write.
    this.save().catch(() => {});
  }

  /** The outcome of each snapshot write: counted, logged, and failures told to the store. */
  private written(err: unknown): void {
    const s = this.snap;
    s.writes++;
    const path = this.snapshot?.path;
    if (err === undefined) {
      if (s.lastError !== null) this.logger.warn({ path, failures: s.failures }, 'memory snapshot written again');
      s.lastSuccessAt = this.clock.now();
      s.lastError = null;
      return;
    }
    s.failures++;
    s.lastError = err instanceof Error ? err.message : String(err);
    this.logger.error(
      { path, err, failures: s.failures, lastSuccessAt: s.lastSuccessAt },
      'memory snapshot failed: a crash now would lose the sessions changed since the last snapshot',
    );
    const failure = new Error(`snapshot to ${path} failed: ${s.lastError}`, { cause: err });
    for (const listener of this.errorListeners) listener(failure);
  }

  /**
   * Takes the soonest-expired entry off the queue if one has expired. On the way it drops
   * entries that were removed or replaced, and re-queues the ones touched since.
   */
  private soonestExpired(now: number): Entry | undefined {
    const q = this.queue;
    for (let due = q.peekKey(); due !== undefined && due <= now; due = q.peekKey()) {
      const e = q.pop() as Entry;
      if (e.dropped) continue;
      if (e.expiresAt <= now) return e;
      q.push(e.expiresAt, e);
    }
    return undefined;
  }

  private live(id: string, now: number): Entry {
    const e = this.byId.get(id);
    if (!e || e.expiresAt <= now) throw errors.notFound(id);
    return e;
  }

  private checkLease(e: Entry, now: number, fence: number | undefined): void {
    const held = activeLock(e, now);
    if (held && held.fence !== fence) {
      throw errors.locked(e.id, held.owner, held.expiresAt);
    }
  }

  private capUser(userId: string, now: number, policy: InsertPolicy, ended: Ended[]): void {
    const cap = policy.maxSessionsPerUser;
    const list = this.byUser.get(userId);
    if (cap === undefined || !list || list.size < cap) return;
    // The least recently used go first, as many as make room for one more.
    if (list.size === cap) {
      // The usual case (a user at the cap): one walk of at most `cap` entries finds the one.
      let e = list.head as Entry;
      for (let o = e.userNext; o; o = o.userNext) if (o.lastAccessedAt < e.lastAccessedAt) e = o;
      this.end(e, e.expiresAt <= now ? expiryReason(e) : 'evicted', ended);
      return;
    }
    // Over the cap (a snapshot written under a higher one): sorted once, not one walk per
    // eviction; the least recent are at the end, and go from there.
    const all = this.userByRecency(list, Number.NEGATIVE_INFINITY);
    for (let i = all.length - 1; i >= cap - 1; i--) {
      const e = all[i] as Entry;
      this.end(e, e.expiresAt <= now ? expiryReason(e) : 'evicted', ended);
    }
  }

  /** Every entry, least recently used first: what a snapshot writes, so a restore keeps the order. */
  private *byRecency(): Generator<Entry> {
    for (let e = this.lruHead; e; e = e.lruNext) yield e;
  }

  private lruAppend(e: Entry): void {
    e.lruPrev = this.lruTail;
    e.lruNext = undefined;
    if (this.lruTail) this.lruTail.lruNext = e;
    else this.lruHead = e;
    this.lruTail = e;
  }

  private lruUnlink(e: Entry): void {
    const prev = e.lruPrev;
    const next = e.lruNext;
    if (prev) prev.lruNext = next;
    else this.lruHead = next;
    if (next) next.lruPrev = prev;
    else this.lruTail = prev;
  }

  /** The id index emptied at once, removed entries and all. */
  private clearOrder(): void {
    this.byOrder.clear();
    this.orderGarbage = 0;
    this.stopCompacting();
  }

  private stopCompacting(): void {
    if (this.compactTimer !== undefined) clearImmediate(this.compactTimer);
    this.compactTimer = undefined;
    this.compactFrom = undefined;
  }

  /** Starts the background walk over byOrder (unless one is going): COMPACT_STEP entries a turn of the event loop. */
  private compactSoon(): void {
    if (this.compactTimer !== undefined || this.closed) return;
    this.compactFrom = this.byOrder.minKey();
    const step = () => {
      this.compactTimer = undefined;
      if (this.closed) return;
      this.compactFrom = this.compactStep(this.compactFrom);
      if (this.compactFrom !== undefined && this.orderGarbage > 0) {
        this.compactTimer = setImmediate(step);
        this.compactTimer.unref();
      } else this.compactFrom = undefined;
    };
    this.compactTimer = setImmediate(step);
    this.compactTimer.unref();
  }

  /** Takes the removed entries out of byOrder from `from` on, for COMPACT_STEP entries; where to go on next, or undefined at the end. */
  private compactStep(from: string | undefined): string | undefined {
    const high = this.byOrder.maxKey();
    if (from === undefined || high === undefined) return undefined;
    let next: string | undefined;
    let seen = 0;
    this.byOrder.editRange(from, high, true, (id, e) => {
      if (++seen > COMPACT_STEP) {
        next = id;
        return { break: true };
      }
      if (!e.dropped) return undefined;
      this.byId.deleteRemoved(e);
      this.orderGarbage--;
      return { delete: true };
    });
    return next;
  }

  private add(e: Entry): void {
    this.byId.set(e.id, e);
    this.lruAppend(e);
    // An id swept earlier may still be in byOrder, with its removed entry: replaced here.
    if (!this.byOrder.set(e.id, e)) this.orderGarbage--;
    this.queue.push(e.expiresAt, e);
    if (e.userId !== null) this.userListOf(e.userId).append(e);
    if (e.lock) this.locks.set(e.id, e.lock.expiresAt);
  }

  private userListOf(userId: string): UserList {
    let list = this.byUser.get(userId);
    if (!list) {
      list = new UserList();
      this.byUser.set(userId, list);
      this.userOrder.set(userId, list);
    }
    return list;
  }

  private bump(e: Entry): void {
    // Its user's list does not move (see Entry.userPrev).
    if (this.lruTail !== e) {
      this.lruUnlink(e);
      this.lruAppend(e);
    }
  }

  /** Removes an entry from every index; `lazily`: from byOrder later (see byOrder). */
  private drop(e: Entry, lazily = false): void {
    this.lruUnlink(e);
    e.lruPrev = undefined;
    e.lruNext = e; // dropped
    if (lazily) {
      this.byId.removeLazily();
      // Never live again for a lookup that finds it in byId, whatever the clock says.
      e.expiresAt = Number.NEGATIVE_INFINITY;
      this.orderGarbage++;
      // It waits in byOrder for the walk: let its data go now (nothing reads a swept entry's data).
      e.data = '';
      e.parsedData = null;
    } else {
      this.byId.delete(e.id);
      this.byOrder.delete(e.id);
    }
    if (e.lock) this.locks.delete(e.id);
    const list = e.userId === null ? undefined : this.byUser.get(e.userId);
    if (list) {
      list.unlink(e);
      if (list.size === 0 && e.userId !== null) {
        this.byUser.delete(e.userId);
        this.userOrder.delete(e.userId);
      }
    }
  }

  private end(e: Entry, reason: EndReason, ended: Ended[]): void {
    this.drop(e);
    ended.push({ id: e.id, userId: e.userId, reason });
  }
}
