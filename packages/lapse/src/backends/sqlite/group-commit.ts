import type { Backend, BackendStats, InsertPolicy, JobLease, UserCount } from '../../core/backend.js';
import type { Ended, LockState, SessionRecord } from '../../core/session.js';
// A type-only import (erased at run time): backend.ts makes this class in grouped().
import type { SqliteBackend } from './backend.js';
import type { Db } from './open.js';

interface Queued {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

/**
 * Group commit: writes issued during one turn of the event loop run in ONE transaction on the
 * next turn, each inside its own savepoint (better-sqlite3 nests a transaction function in a
 * savepoint), so one that fails rolls back alone and fails only its own caller. Every caller is
 * told after the shared COMMIT: with `synchronous: 'full'` that is one fsync for the group
 * instead of one per write. A failed COMMIT fails every write of the group.
 */
export class GroupCommit {
  private queue: Queued[] = [];
  private scheduled = false;
  private readonly commit: (batch: Queued[]) => Outcome[];

  constructor(db: Db) {
    this.commit = db.transaction((batch: Queued[]) =>
      batch.map((q): Outcome => {
        try {
          return { ok: true, value: q.run() };
        } catch (err) {
          return { ok: false, err };
        }
      }),
    ).immediate;
  }

  /** Queues a write (a synchronous backend call that is its own transaction) for the next group. */
  run<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: write, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  /** Writes what is queued now (close() calls it before closing the connection). */
  readonly flush = (): void => {
    this.scheduled = false;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    let outcomes: Outcome[];
    try {
      outcomes = this.commit(batch);
    } catch (err) {
      for (const q of batch) q.reject(err);
      return;
    }
    outcomes.forEach((o, i) => {
      const q = batch[i] as Queued;
      if (o.ok) q.resolve(o.value);
      else q.reject(o.err);
    });
  };
}

/**
 * The same SQLite backend with its writes group-committed (see GroupCommit), made by
 * `sqlite({ … }).grouped()`. Reads, touches (already grouped) and sweeps go straight through.
 */
export class GroupCommitSqlite implements Backend {
  readonly name = 'sqlite';
  private readonly group: GroupCommit;

  constructor(readonly inner: SqliteBackend) {
    this.group = new GroupCommit(inner.db);
  }

  get path(): string {
    return this.inner.path;
  }

  insert(rec: SessionRecord, now: number, policy: InsertPolicy, opts?: { replace?: boolean; fence?: number }) {
    return this.group.run(() => this.inner.insert(rec, now, policy, opts));
  }
  get(id: string, now: number) {
    return this.inner.get(id, now);
  }
  touch(id: string, at: number, accesses: number, now: number) {
    return this.inner.touch(id, at, accesses, now);
  }
  update(id: string, data: string, now: number, opts: { expectedVersion?: number; fence?: number }) {
    return this.group.run(() => this.inner.update(id, data, now, opts));
  }
  remove(id: string, now: number, opts: { fence?: number; force?: boolean }) {
    return this.group.run(() => this.inner.remove(id, now, opts));
  }
  rotate(id: string, next: { id: string; secretHash: string }, now: number, opts: { fence?: number }) {
    return this.group.run(() => this.inner.rotate(id, next, now, opts));
  }
  removeUser(userId: string, now: number, exceptId?: string): Promise<Ended[]> {
    return this.group.run(() => this.inner.removeUser(userId, now, exceptId));
  }
  listUser(userId: string, now: number) {
    return this.inner.listUser(userId, now);
  }
  lock(id: string, owner: string, ttlMs: number, now: number): Promise<LockState> {
    return this.group.run(() => this.inner.lock(id, owner, ttlMs, now));
  }
  extendLock(id: string, fence: number, ttlMs: number, now: number): Promise<LockState> {
    return this.group.run(() => this.inner.extendLock(id, fence, ttlMs, now));
  }
  unlock(id: string, fence: number, now: number): Promise<boolean> {
    return this.group.run(() => this.inner.unlock(id, fence, now));
  }
  sweep(now: number, limit: number) {
    return this.inner.sweep(now, limit);
  }
  count(now: number) {
    return this.inner.count(now);
  }
  stats(now: number): BackendStats {
    return this.inner.stats(now);
  }
  scan(afterId: string | null, limit: number, now: number) {
    return this.inner.scan(afterId, limit, now);
  }
  scanUsers(prefix: string, afterUserId: string | null, limit: number, now: number): UserCount[] {
    return this.inner.scanUsers(prefix, afterUserId, limit, now);
  }
  clear() {
    return this.group.run(() => this.inner.clear());
  }
  ping() {
    return this.inner.ping();
  }
  jobLease(): JobLease {
    return this.inner.jobLease();
  }
  close(): Promise<void> {
    this.group.flush();
    return this.inner.close();
  }
}
