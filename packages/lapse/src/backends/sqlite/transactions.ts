import type { Statement } from 'better-sqlite3';
import type { BackendStats, InsertPolicy } from '../../core/backend.js';
import { errors, LapseError } from '../../core/errors.js';
import { type Ended, type EndReason, expiresAtOf, expiryReason, type LockState, type SessionRecord } from '../../core/session.js';
import type { Db } from './open.js';
import { homeSlot } from './slot.js';
import { type EndedRow, fromTuple, type SessionRow, type StatementName, toParams, toRecord } from './statements.js';

/** One queued touch, as the group commit hands it over. */
export interface TouchArgs {
  id: string;
  at: number;
  accesses: number;
  now: number;
}

/** Every write of the backend as one transaction, and the multi-statement reads as one snapshot. */
export interface Transactions {
  insert(rec: SessionRecord, now: number, policy: InsertPolicy, replace: boolean, fence?: number): { record: SessionRecord; ended: Ended[] };
  touchBatch(batch: TouchArgs[]): (SessionRecord | null)[];
  update(id: string, data: string, now: number, expectedVersion?: number, fence?: number): SessionRecord;
  remove(id: string, now: number, fence: number | undefined, force: boolean): SessionRecord | null;
  rotate(id: string, nextId: string, secretHash: string, now: number, fence?: number): SessionRecord;
  removeUser(userId: string, now: number, exceptId: string | null): Ended[];
  lock(id: string, owner: string, ttlMs: number, now: number): LockState;
  extend(id: string, fence: number, ttlMs: number, now: number): LockState;
  unlock(id: string, fence: number, now: number): boolean;
  sweep(now: number, limit: number): Ended[];
  clear(): void;
  count(now: number): number;
  stats(now: number): BackendStats;
}

/**
 * Wraps each operation in a transaction. Writes take the write lock up front (BEGIN
 * IMMEDIATE): a read-then-write transaction that upgraded later could fail with SQLITE_BUSY
 * when another process wrote in between, and the busy timeout would not help. Reads of
 * several statements share one snapshot (a deferred transaction).
 */
export function transactions(db: Db, st: Record<StatementName, Statement>): Transactions {
  const ops = new SessionOps(st);
  return {
    insert: ops.insertOne.bind(ops, db.transaction(ops.insert.bind(ops)).immediate),
    touchBatch: db.transaction((batch: TouchArgs[]) => batch.map((t) => ops.touch(t.id, t.at, t.accesses, t.now))).immediate,
    // One statement each, outside a transaction (see SessionOps.updateOne and insertOne); the
    // transaction bodies are their fallbacks.
    update: ops.updateOne.bind(ops, db.transaction(ops.update.bind(ops)).immediate),
    remove: db.transaction(ops.remove.bind(ops)).immediate,
    rotate: db.transaction(ops.rotate.bind(ops)).immediate,
    removeUser: db.transaction(ops.removeUser.bind(ops)).immediate,
    lock: db.transaction(ops.lock.bind(ops)).immediate,
    extend: db.transaction(ops.extend.bind(ops)).immediate,
    unlock: db.transaction(ops.unlock.bind(ops)).immediate,
    sweep: db.transaction(ops.sweep.bind(ops)).immediate,
    clear: db.transaction(() => void st.clear.run()).immediate,
    count: db.transaction((now: number) => ops.counter('sessions') - (st.due.get(now) as number)).deferred,
    stats: db.transaction(
      (now: number): BackendStats => ({
        sessions: ops.counter('sessions'),
        users: ops.counter('users'),
        locked: st.locked.get(now) as number,
      }),
    ).deferred,
  };
}

/** The bodies of the transactions: the policies (caps, leases, versions) in SQL statements. */
class SessionOps {
  constructor(private readonly st: Record<StatementName, Statement>) {}

  insert(rec: SessionRecord, now: number, policy: InsertPolicy, replace: boolean, fence?: number): { record: SessionRecord; ended: Ended[] } {
    const st = this.st;
    const ended: Ended[] = [];
    const row = st.getAny.get(rec.id) as SessionRow | undefined;
    if (row && row.expires_at > now) {
      if (!replace) throw new LapseError('LAPSE_INVALID_INPUT', `a session with id ${rec.id} exists`);
      this.checkLease(row, now, fence);
      if (rec.userId !== null && rec.userId !== row.user_id) this.capUser(rec.userId, now, policy, ended);
      const updated = st.replace.get({
        id: rec.id,
        secret_hash: rec.secretHash,
        user_id: rec.userId,
        data: rec.data,
        last_accessed_at: rec.lastAccessedAt,
        expires_at: expiresAtOf(rec.lastAccessedAt, rec.idleTimeout, row.absolute_expires_at),
        idle_timeout: rec.idleTimeout,
        ip: rec.ip,
        user_agent: rec.userAgent,
      }) as SessionRow;
      return { record: toRecord(updated), ended };
    }
    if (row) this.end(row, expiryReason(ofRow(row)), ended);
    if (rec.userId !== null) this.capUser(rec.userId, now, policy, ended);
    const max = policy.maxSessions;
    if (max !== undefined) {
      while (this.counter('sessions') >= max) {
        // An expired session makes room before any live one is evicted.
        const soonest = st.soonest.get() as EndedRow | undefined;
        if (soonest && soonest.expires_at <= now) this.end(soonest, expiryReason(ofRow(soonest)), ended);
        else {
          const lru = st.lru.get() as EndedRow | undefined;
          if (!lru) break;
          this.end(lru, 'evicted', ended);
        }
      }
    }
    st.insert.run(toParams(rec));
    return { record: { ...rec }, ended };
  }

  /**
   * A create with no cap to apply: the INSERT alone, one autocommit statement (the triggers
   * count it in the same statement), no read first. An id already in the file, live or
   * expired and not yet swept, fails the id's UNIQUE constraint, which writes nothing; then
   * `slow`, the whole insert in one transaction, decides (replace, end the expired one, or
   * refuse).
   */
  insertOne(slow: SessionOps['insert'], rec: SessionRecord, now: number, policy: InsertPolicy, replace: boolean, fence?: number): { record: SessionRecord; ended: Ended[] } {
    if (policy.maxSessions === undefined && (policy.maxSessionsPerUser === undefined || rec.userId === null)) {
      try {
        this.st.insert.run(toParams(rec));
        return { record: { ...rec }, ended: [] };
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'SQLITE_CONSTRAINT_UNIQUE') throw err;
      }
    }
    return slow(rec, now, policy, replace, fence);
  }

  /**
   * An update as one statement (SQL.updateData: the checks of `update` in its WHERE clause).
   * No row back means nothing was written; the row as it is now says why. Should that read
   * find no reason (another process changed the row between the two statements), `slow`, the
   * read-check-write transaction, settles it.
   */
  updateOne(slow: SessionOps['update'], id: string, data: string, now: number, expectedVersion?: number, fence?: number): SessionRecord {
    const v = expectedVersion ?? null;
    const row = this.st.updateData.get(data, id, now, now, fence ?? null, v, v) as unknown[] | undefined;
    if (row) return fromTuple(id, row);
    this.writable(id, now, expectedVersion, fence);
    return slow(id, data, now, expectedVersion, fence);
  }

  touch(id: string, at: number, accesses: number, now: number): SessionRecord | null {
    // One statement: no read first, and the record comes back as a tuple (see fromTuple).
    const row = this.st.touch.get({ id, at, accesses, now }) as unknown[] | undefined;
    return row ? fromTuple(id, row) : null;
  }

  update(id: string, data: string, now: number, expectedVersion?: number, fence?: number): SessionRecord {
    this.writable(id, now, expectedVersion, fence);
    return toRecord(this.st.setData.get(data, id) as SessionRow);
  }

  /** The checks of an update, in their order: a live session, no lease in force but the caller's, the expected version. */
  private writable(id: string, now: number, expectedVersion: number | undefined, fence: number | undefined): void {
    const row = this.live(id, now);
    this.checkLease(row, now, fence);
    if (expectedVersion !== undefined && expectedVersion !== row.version) {
      throw errors.versionConflict(id, row.version, expectedVersion);
    }
  }

  remove(id: string, now: number, fence: number | undefined, force: boolean): SessionRecord | null {
    const row = this.st.get.get(id, now) as SessionRow | undefined;
    if (!row) return null;
    if (!force) this.checkLease(row, now, fence);
    this.st.remove.run(id);
    return toRecord(row);
  }

  rotate(id: string, nextId: string, secretHash: string, now: number, fence?: number): SessionRecord {
    const row = this.live(id, now);
    this.checkLease(row, now, fence);
    if (this.st.exists.get(nextId) !== undefined) throw new LapseError('LAPSE_INVALID_INPUT', `a session with id ${nextId} exists`);
    const moved = this.st.rotate.get({
      id,
      next: nextId,
      slot: homeSlot(nextId),
      secret_hash: secretHash,
      now,
      expires_at: expiresAtOf(now, row.idle_timeout, row.absolute_expires_at),
    }) as SessionRow;
    return toRecord(moved);
  }

  removeUser(userId: string, now: number, exceptId: string | null): Ended[] {
    const rows = this.st.removeUser.all(userId, exceptId) as EndedRow[];
    return rows.map((r) => ended(r, r.expires_at <= now ? expiryReason(ofRow(r)) : 'revoked'));
  }

  lock(id: string, owner: string, ttlMs: number, now: number): LockState {
    const row = this.live(id, now);
    if (row.lock_fence !== null && (row.lock_expires_at ?? 0) > now) {
      throw errors.locked(id, row.lock_owner, row.lock_expires_at);
    }
    // The fence counter lives in the file, so it keeps growing across processes and restarts.
    const fence = this.st.nextFence.get() as number;
    const lock = { owner, fence, expiresAt: now + ttlMs };
    this.st.setLock.run(owner, fence, lock.expiresAt, id);
    return lock;
  }

  extend(id: string, fence: number, ttlMs: number, now: number): LockState {
    const row = this.live(id, now);
    if (row.lock_fence !== fence || (row.lock_expires_at ?? 0) <= now) {
      throw errors.leaseLost(id, fence);
    }
    const lock = { owner: row.lock_owner ?? '', fence, expiresAt: now + ttlMs };
    this.st.setLock.run(lock.owner, fence, lock.expiresAt, id);
    return lock;
  }

  unlock(id: string, fence: number, now: number): boolean {
    const row = this.st.get.get(id, now) as SessionRow | undefined;
    if (!row || row.lock_fence !== fence) return false;
    this.st.setLock.run(null, null, null, id);
    return (row.lock_expires_at ?? 0) > now;
  }

  sweep(now: number, limit: number): Ended[] {
    const rows = this.st.sweep.all(now, limit) as EndedRow[];
    // RETURNING gives no order; callers get soonest-expired first.
    rows.sort((a, b) => a.expires_at - b.expires_at);
    return rows.map((r) => ended(r, expiryReason(ofRow(r))));
  }

  /** The live row, or NOT_FOUND. */
  private live(id: string, now: number): SessionRow {
    const row = this.st.get.get(id, now) as SessionRow | undefined;
    if (!row) throw errors.notFound(id);
    return row;
  }

  /** LOCKED when a lease is in force and `fence` is not its number. */
  private checkLease(row: SessionRow, now: number, fence: number | undefined): void {
    if (row.lock_fence !== null && (row.lock_expires_at ?? 0) > now && row.lock_fence !== fence) {
      throw errors.locked(row.id, row.lock_owner, row.lock_expires_at);
    }
  }

  /** Makes room under the per-user cap: the user's least recently used session goes first. */
  private capUser(userId: string, now: number, policy: InsertPolicy, out: Ended[]): void {
    const cap = policy.maxSessionsPerUser;
    if (cap === undefined) return;
    let n = (this.st.userCount.get(userId) as number | undefined) ?? 0;
    for (; n >= cap; n--) {
      const lru = this.st.userLru.get(userId) as EndedRow | undefined;
      if (!lru) break;
      this.end(lru, lru.expires_at <= now ? expiryReason(ofRow(lru)) : 'evicted', out);
    }
  }

  private end(row: EndedRow, reason: EndReason, out: Ended[]): void {
    this.st.remove.run(row.id);
    out.push(ended(row, reason));
  }

  counter(key: 'sessions' | 'users'): number {
    return (this.st.counter.get(key) as number | undefined) ?? 0;
  }
}

function ended(row: EndedRow, reason: EndReason): Ended {
  return { id: row.id, userId: row.user_id, reason };
}

function ofRow(row: EndedRow): { expiresAt: number; absoluteExpiresAt: number } {
  return { expiresAt: row.expires_at, absoluteExpiresAt: row.absolute_expires_at };
}
