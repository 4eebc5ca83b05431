import type { Statement } from 'better-sqlite3';
import type { Backend, BackendStats, InsertPolicy, JobLease, UserCount } from '../../core/backend.js';
import { type Clock, systemClock } from '../../core/clock.js';
import { CleanupSteps } from '../../core/cleanup.js';
import { errors } from '../../core/errors.js';
import { defaultLogger } from '../../util/logger.js';
import { type Ended, expiryReason, type LockState, type SessionRecord } from '../../core/session.js';
import { Checkpointer, type SweptChunk } from './checkpointer.js';
import { GroupCommitSqlite } from './group-commit.js';
import { sqliteJobLease } from './job-lease.js';
import { type Db, openDatabase } from './open.js';
import { resolveSqliteOptions, type SqliteOptions } from './options.js';
import { ReadCache } from './read-cache.js';
import { homeSlot } from './slot.js';
import { fromTuple, ID_COLUMN, prepareAll, SQL, type SessionRow, type StatementName, toRecord } from './statements.js';
import { nextTurn, TouchQueue } from './touch-queue.js';
import { type Transactions, transactions } from './transactions.js';

export type { SqliteOptions } from './options.js';
export { SCHEMA_VERSION } from './schema.js';

/**
 * Time one sweep transaction aims to take, and the bounds of its row count. On this disk a
 * slice now and then takes 4-5x its aim: its commit meets the checkpoint worker's writes and
 * fsync. With 8 ms slices and a catch-up every 5,000 rows those outliers reached 25-35 ms
 * (59 ms once) over a sweep of 1M rows; with 4 ms and 1,000 rows they stay under ~18 ms, for
 * a sweep about a quarter longer.
 */
const SWEEP_SLICE_MS = 4;
const SWEEP_MIN_CHUNK = 32;
const SWEEP_MAX_CHUNK = 5_000;
/**
 * Rows bulk writers (sweep, touch batches) change between two waits for the checkpoint worker:
 * small catch-ups, each a short checkpoint, rather than long ones that stall the next commit.
 */
const ROWS_PER_CHECKPOINT = 1_000;
/** SQLite's autocheckpoint stays on as a backstop while the worker does the work (~100 MB of WAL). */
const BACKSTOP_PAGES = 25_000;

/**
 * The SQLite backend on better-sqlite3: one file, WAL, every operation one transaction,
 * every policy on an index. Several processes may share the file.
 * @example
 * import { sqlite } from 'lapse/sqlite';
 * const store = createStore({ backend: sqlite({ path: './data/lapse.db' }) });
 */
export function sqlite(options: SqliteOptions): SqliteBackend {
  return new SqliteBackend(options);
}

export class SqliteBackend implements Backend {
  readonly name = 'sqlite';
  readonly path: string;
  /** The connection, for tests and tools; Lapse owns it and closes it in close(). */
  readonly db: Db;
  private readonly st: Record<StatementName, Statement>;
  private readonly tx: Transactions;
  private readonly clock: Clock;
  private readonly checkpointer: Checkpointer | undefined;
  private readonly cache: ReadCache | undefined;
  private readonly touches: TouchQueue;
  private lease: JobLease | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Rows per sweep transaction, adapted to SWEEP_SLICE_MS; starts small (the first chunk may meet a cold page cache). */
  private sweepChunk = SWEEP_MIN_CHUNK;
  /** Rows written by bulk writers since the checkpoint worker last caught up. */
  private writtenSinceCheckpoint = 0;

  constructor(options: SqliteOptions) {
    const o = resolveSqliteOptions(options);
    this.path = o.path;
    this.clock = options.clock ?? systemClock;
    const background = o.checkpointIntervalMs !== false;
    this.db = openDatabase(o.path, {
      busyTimeoutMs: o.busyTimeoutMs,
      synchronous: o.synchronous,
      cacheSizeMiB: o.cacheSizeMiB,
      autocheckpointPages: background ? BACKSTOP_PAGES : 1000,
    });
    if (o.checkpointIntervalMs !== false) {
      let logger = options.logger;
      this.checkpointer = new Checkpointer({
        path: o.path,
        intervalMs: o.checkpointIntervalMs,
        busyTimeoutMs: o.busyTimeoutMs,
        synchronous: o.synchronous,
        sweep: {
          sql: SQL.sweep,
          sliceMs: SWEEP_SLICE_MS,
          minChunk: SWEEP_MIN_CHUNK,
          maxChunk: SWEEP_MAX_CHUNK,
          rowsPerCheckpoint: ROWS_PER_CHECKPOINT,
        },
        onError: (message) => {
          logger ??= defaultLogger();
          logger.warn({ path: o.path, err: message }, 'sqlite: background checkpoint failed');
        },
      });
    }
    this.st = prepareAll(this.db);
    this.tx = transactions(this.db, this.st);
    if (o.readCache > 0) {
      const dataVersion = this.db.prepare('PRAGMA data_version').pluck();
      // The recheck window runs on the injected clock when one is given (tests), else on performance.now().
      const clock = options.clock && options.clock !== systemClock ? options.clock : undefined;
      this.cache = new ReadCache(o.readCache, () => dataVersion.get() as number, o.readCacheRecheckMs, clock && (() => clock.now()));
    }
    this.touches = new TouchQueue(
      (batch) => {
        if (this.closed) throw errors.closed(`sqlite backend ${this.path}`);
        return this.writing(
          batch.map((t) => t.id),
          () => {
            const out = this.tx.touchBatch(batch);
            this.writtenSinceCheckpoint += batch.length;
            return out;
          },
        );
      },
      () => this.pace(),
      this.checkpointer,
    );
  }

  /**
   * Every write goes through here: it forgets the ids it touched from the read cache even when
   * it failed (a write that failed half-way rolled back, and forgetting too much is always safe).
   */
  private writing<T>(ids: string | readonly string[], write: () => T): T {
    try {
      return write();
    } finally {
      const cache = this.cache;
      if (cache) {
        if (typeof ids === 'string') cache.delete(ids);
        else for (const id of ids) cache.delete(id);
      }
    }
  }

  insert(rec: SessionRecord, now: number, policy: InsertPolicy, opts: { replace?: boolean; fence?: number } = {}) {
    return this.writing(rec.id, () => {
      const res = this.tx.insert(rec, now, policy, opts.replace === true, opts.fence);
      this.forget(res.ended);
      return res;
    });
  }

  /** The read path: a cached record when no other connection wrote since, else one indexed SELECT. */
  get(id: string, now: number): SessionRecord | null {
    const cache = this.cache;
    // data_version is asked only before serving a hit: a miss reads the file anyway, and a
    // record cached after an unseen commit by someone else is dropped (needlessly, safely)
    // by the next check.
    if (cache?.has(id)) {
      cache.sync();
      const hit = cache.get(id);
      if (hit === null) return null;
      if (hit !== undefined) {
        if (hit.expiresAt > now) return hit;
        cache.delete(id);
        return null;
      }
    }
    // At home nearly always; else (displaced, or not there at all) by the id's index.
    let row = this.st.read.get(homeSlot(id)) as unknown[] | undefined;
    if (row === undefined || row[ID_COLUMN] !== id) row = this.st.readById.get(id) as unknown[] | undefined;
    if (!row) {
      cache?.admitMissing(id);
      return null;
    }
    // With a read cache, the record keeps its own parse (see fromTuple); without one, every read
    // is a fresh record, and the store's parsed-data cache serves a hot session instead.
    const rec = fromTuple(id, row, cache ? null : undefined);
    // Expired, swept or not: never returned (and not worth caching).
    if (rec.expiresAt <= now) return null;
    cache?.admit(rec);
    return rec;
  }

  /** Group-committed with the touches queued in the same turn of the event loop (see TouchQueue). */
  touch(id: string, at: number, accesses: number, now: number): Promise<SessionRecord | null> {
    return this.touches.push({ id, at, accesses, now });
  }

  update(id: string, data: string, now: number, opts: { expectedVersion?: number; fence?: number }): SessionRecord {
    return this.writing(id, () => this.tx.update(id, data, now, opts.expectedVersion, opts.fence));
  }

  remove(id: string, now: number, opts: { fence?: number; force?: boolean }): SessionRecord | null {
    return this.writing(id, () => this.tx.remove(id, now, opts.fence, opts.force === true));
  }

  rotate(id: string, next: { id: string; secretHash: string }, now: number, opts: { fence?: number }): SessionRecord {
    return this.writing([id, next.id], () => this.tx.rotate(id, next.id, next.secretHash, now, opts.fence));
  }

  removeUser(userId: string, now: number, exceptId?: string): Ended[] {
    return this.forget(this.tx.removeUser(userId, now, exceptId ?? null));
  }

  listUser(userId: string, now: number): SessionRecord[] {
    return (this.st.listUser.all(userId, now) as SessionRow[]).map(toRecord);
  }

  lock(id: string, owner: string, ttlMs: number, now: number): LockState {
    return this.writing(id, () => this.tx.lock(id, owner, ttlMs, now));
  }

  extendLock(id: string, fence: number, ttlMs: number, now: number): LockState {
    return this.writing(id, () => this.tx.extend(id, fence, ttlMs, now));
  }

  unlock(id: string, fence: number, now: number): boolean {
    return this.writing(id, () => this.tx.unlock(id, fence, now));
  }

  /**
   * Removes up to `limit` expired sessions in chunks of one transaction each, sized to take
   * about SWEEP_SLICE_MS. With the checkpoint worker (every file-backed database) the chunks
   * run on its thread and connection, so the event loop only waits for their answers; without
   * it they run here, yielding to the event loop between them. Either way a long sweep never
   * holds the loop, or the write lock other writers wait for, for long.
   */
  async sweep(now: number, limit: number): Promise<Ended[]> {
    if (this.checkpointer) return this.sweepOffLoop(this.checkpointer, now, limit);
    const out: Ended[] = [];
    while (out.length < limit && !this.closed) {
      await this.pace();
      if (this.closed) break;
      const want = Math.min(this.sweepChunk, limit - out.length);
      const started = performance.now();
      const ended = this.forget(this.tx.sweep(now, want));
      const took = performance.now() - started;
      for (const e of ended) out.push(e);
      this.writtenSinceCheckpoint += ended.length;
      if (ended.length < want) break;
      // Grow at most twofold per step, so one fast chunk on a warm cache cannot overshoot.
      const next = Math.round((want * SWEEP_SLICE_MS) / Math.max(took, 0.1));
      this.sweepChunk = Math.max(SWEEP_MIN_CHUNK, Math.min(next, want * 2, SWEEP_MAX_CHUNK));
      if (out.length < limit) await nextTurn();
    }
    return out;
  }

  /** The sweep on the checkpoint worker's connection, a chunk per ask (see Checkpointer.sweepChunk). */
  private async sweepOffLoop(worker: Checkpointer, now: number, limit: number): Promise<Ended[]> {
    const out: Ended[] = [];
    while (out.length < limit && !this.closed) {
      let chunk: SweptChunk | null;
      try {
        chunk = await worker.sweepChunk(now, limit - out.length);
      } catch (err) {
        // Rows of earlier chunks are gone: report them (a later sweep finds the rest).
        if (out.length > 0) return out;
        throw err;
      }
      if (!chunk) break;
      for (const [id, userId, expiresAt, absoluteExpiresAt] of chunk.rows) {
        this.cache?.delete(id);
        out.push({ id, userId, reason: expiryReason({ expiresAt, absoluteExpiresAt }) });
      }
      if (!chunk.full) break;
    }
    return out;
  }

  count(now: number): number {
    return this.tx.count(now);
  }

  stats(now: number): BackendStats {
    return this.tx.stats(now);
  }

  scan(afterId: string | null, limit: number, now: number): SessionRecord[] {
    return (this.st.scan.all(afterId ?? '', now, limit) as SessionRow[]).map(toRecord);
  }

  /** From lapse_users' primary key: the rows from the prefix on, stopping at the first that does not match. */
  scanUsers(prefix: string, afterUserId: string | null, limit: number, _now: number): UserCount[] {
    const out: UserCount[] = [];
    if (!(limit > 0)) return out;
    for (const row of this.st.scanUsers.all(prefix, afterUserId ?? '', limit) as UserCount[]) {
      if (!row.userId.startsWith(prefix)) break;
      out.push({ userId: row.userId, sessions: Number(row.sessions) });
    }
    return out;
  }

  clear(): void {
    try {
      this.tx.clear();
    } finally {
      this.cache?.clear();
    }
  }

  ping(): void {
    if (this.closed) throw errors.closed(`sqlite backend ${this.path}`);
    this.st.ping.get();
  }

  /**
   * This backend with group commit: the writes issued in one turn of the event loop share one
   * transaction (one fsync with `synchronous: 'full'`), each in its own savepoint, each caller
   * told its own result or error after the commit.
   * @example createStore({ backend: sqlite({ path, synchronous: 'full' }).grouped() })
   */
  grouped(): Backend {
    return new GroupCommitSqlite(this);
  }

  /** A JobLease in the same file: one run of a job across every process that shares it. */
  jobLease(): JobLease {
    this.lease ??= sqliteJobLease(this.db, this.clock);
    return this.lease;
  }

  /** Writes queued touches, closes the connection, then the checkpoint worker (its last checkpoint runs off the event loop). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const steps = new CleanupSteps();
      await steps.run(() => this.touches.drain());
      this.closed = true;
      // Keeps the planner's statistics fresh at almost no cost (SQLite's advice for long-lived connections).
      await steps.run(() => this.db.pragma('optimize'));
      this.cache?.clear();
      await steps.run(() => this.db.close());
      await steps.run(() => this.checkpointer?.close());
      steps.finish('closing the SQLite backend failed');
    })();
    return this.closing;
  }

  /**
   * Every so many rows written in bulk, waits for the checkpoint worker to catch up: a bulk
   * writer that never paused would grow the WAL to the backstop, where SQLite checkpoints
   * on the event loop.
   */
  private async pace(): Promise<void> {
    if (!this.checkpointer || this.writtenSinceCheckpoint < ROWS_PER_CHECKPOINT) return;
    await this.checkpointer.drained(1_000);
    this.writtenSinceCheckpoint = 0;
  }

  private forget(ended: Ended[]): Ended[] {
    if (this.cache) for (const e of ended) this.cache.delete(e.id);
    return ended;
  }
}
