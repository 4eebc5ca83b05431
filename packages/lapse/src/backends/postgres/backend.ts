import type { Pool, QueryResult } from 'pg';
import { pg } from './driver.js';
import type { Backend, BackendStats, InsertPolicy, JobLease, UserCount } from '../../core/backend.js';
import { errors } from '../../core/errors.js';
import { defaultLogger, type Logger } from '../../util/logger.js';
import type { Ended, LockState, SessionRecord } from '../../core/session.js';
import { mapError } from './errors.js';
import { arrayLiteral } from './array-literal.js';
import { Batcher } from './batch.js';
import { postgresJobLease } from './job-lease.js';
import { migrate } from './migrate.js';
import { type SchemaNames, schemaNames } from './names.js';
import { UnlockListener } from './notifications.js';
import { type PostgresOptions, resolvePostgresOptions } from './options.js';
import {
  fromJson,
  recordOf,
  insertArgs,
  type Named,
  namer,
  type SessionJson,
  INSERT_ROW,
  type Statements,
  statements,
  UPDATE_ROW,
} from './statements.js';

/** Rows one sweep transaction removes at most: its locks are held for a few ms, never for the whole sweep. */
const SWEEP_BATCH = 500;
/** Server-side aborts of a whole statement that are safe to run again: deadlock_detected, serialization_failure. */
const RETRYABLE = new Set(['40P01', '40001']);
const RETRIES = 3;
/** At most one pool error line per this long: a restart fails every idle connection at once. */
const LOG_EVERY_MS = 5_000;
/**
 * Group commit (batch.ts): items per statement, at most. An insert is a subtransaction each
 * (lapse_insert_many), and a transaction keeps up to 64 of them in shared memory.
 */
const BATCH_MAX = { get: 100, update: 64, insert: 32 } as const;
/** Insert batches in flight at once (see the constructor). */
const INSERT_LANES = 1;

interface UpdateItem {
  id: string;
  data: string;
  now: number;
  expected: number | null;
  fence: number | null;
}

interface InsertItem {
  rec: SessionRecord;
  args: unknown[];
}

type InsertOut = { record: SessionRecord; ended: Ended[] };

export class PostgresBackend implements Backend {
  readonly name = 'postgres';
  /** The pool in use (yours, or the one made from `url`). */
  readonly pool: Pool;
  readonly schema: string;
  private readonly names: SchemaNames;
  private readonly st: Statements;
  private readonly owned: boolean;
  private readonly listeners = new Set<(id: string) => void>();
  private listener: UnlockListener | undefined;
  private lease: JobLease | undefined;
  private migrating: Promise<void> | undefined;
  private migrated = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private logger: Logger | undefined;
  private lastPoolError = 0;
  private readonly failures = new Map<string, (err: unknown) => never>();
  private readonly gets: Batcher<string, SessionRecord | null>;
  private readonly updates: Batcher<UpdateItem, SessionRecord>;
  private readonly inserts: Batcher<InsertItem, InsertOut>;

  constructor(options: PostgresOptions) {
    const o = resolvePostgresOptions(options);
    this.names = schemaNames(o.schema);
    this.schema = o.schema;
    this.st = statements(this.names);
    this.logger = options.logger;
    this.owned = o.pool === undefined;
    this.pool =
      o.pool ??
      new pg.Pool({
        connectionString: o.url,
        max: o.poolSize,
        // Bounded waits: for a pooled connection, and for every reply (see docs/postgres.md).
        connectionTimeoutMillis: o.timeoutMs,
        query_timeout: o.timeoutMs,
        // The server's own bound (sent at connect, no extra round trip): a statement stuck on
        // a lock is aborted there (57014) and its connection freed, before query_timeout.
        statement_timeout: o.statementTimeoutMs,
        // Lapse's own statements by index whatever the table's size when a connection planned
        // them (the functions say the same themselves: schema.ts, version 6). Only on a pool of
        // Lapse's own: a lent pool runs the application's queries too.
        options: '-c enable_seqscan=off',
        keepAlive: true,
        idleTimeoutMillis: 30_000,
        allowExitOnIdle: true,
        application_name: 'lapse',
      });
    // An idle connection the server dropped (a restart) is reported here; unhandled, it would crash the process.
    this.pool.on('error', this.onPoolError);
    // A few batches of each kind in flight, the rest of the pool for everything else.
    const lanes = Math.max(1, Math.ceil((o.pool?.options.max ?? o.poolSize) / 4));
    this.gets = new Batcher((ids) => this.getBatch(ids), BATCH_MAX.get, lanes);
    this.updates = new Batcher((items) => this.updateBatch(items), BATCH_MAX.update, lanes);
    // Inserts take one lane: a batch gathers the logins that arrive while the one before it
    // commits, so a burst of logins shares one commit (one WAL flush) instead of three that
    // overlap. Measured on the express login route (docs/decisions.md): 1.25x connect-pg-simple
    // (median of five runs) against 1.0-1.2x with the shared lane count. Reads and updates keep
    // several lanes: a read waits for no flush, and the updates of one session queue per row.
    this.inserts = new Batcher((items) => this.insertBatch(items), BATCH_MAX.insert, INSERT_LANES);
  }

  /** Creates or checks the schema (once); every call waits for it. Rejects with LAPSE_INVALID_OPTION on a schema Lapse must not touch. */
  ready(): Promise<void> {
    if (this.closed) return Promise.reject(errors.closed('postgres backend'));
    this.migrating ??= migrate(this.pool, this.names).then(
      () => {
        this.migrated = true;
      },
      (err: unknown) => {
        this.migrating = undefined; // retried by the next call (the server may be back)
        throw mapError('migrate', err);
      },
    );
    return this.migrating;
  }

  insert(rec: SessionRecord, now: number, policy: InsertPolicy, opts: { replace?: boolean; fence?: number } = {}): Promise<InsertOut> {
    if (this.closed) return Promise.reject(errors.closed('postgres backend'));
    return this.inserts.push({
      rec,
      args: [...insertArgs(rec), now, policy.maxSessions ?? null, policy.maxSessionsPerUser ?? null, opts.replace === true, opts.fence ?? null],
    });
  }

  get(id: string, now: number): Promise<SessionRecord | null> {
    if (this.closed) return Promise.reject(errors.closed('postgres backend'));
    // Expired, swept or not: never returned.
    return this.gets.push(id).then((rec) => (rec && rec.expiresAt > now ? rec : null));
  }

  async touch(id: string, at: number, accesses: number, now: number): Promise<SessionRecord | null> {
    const row = (await this.run('touch', this.st.touch, [id, at, accesses, now])).rows[0] as unknown[] | undefined;
    return row ? recordOf(row) : null;
  }

  update(id: string, data: string, now: number, opts: { expectedVersion?: number; fence?: number }): Promise<SessionRecord> {
    if (this.closed) return Promise.reject(errors.closed('postgres backend'));
    return this.updates.push({ id, data, now, expected: opts.expectedVersion ?? null, fence: opts.fence ?? null });
  }

  async remove(id: string, now: number, opts: { fence?: number; force?: boolean }) {
    const r = await this.run('remove', this.st.remove, [id, now, opts.fence ?? null, opts.force === true]);
    const row = value<SessionJson | null>(r);
    return row ? fromJson(row) : null;
  }

  async rotate(id: string, next: { id: string; secretHash: string }, now: number, opts: { fence?: number }) {
    const r = await this.run('rotate', this.st.rotate, [id, next.id, next.secretHash, now, opts.fence ?? null]);
    return fromJson(value<SessionJson>(r));
  }

  async removeUser(userId: string, now: number, exceptId?: string): Promise<Ended[]> {
    return value<Ended[]>(await this.run('removeUser', this.st.removeUser, [userId, now, exceptId ?? null]));
  }

  async listUser(userId: string, now: number): Promise<SessionRecord[]> {
    return (await this.run('listUser', this.st.listUser, [userId, now])).rows.map((t) => recordOf(t as unknown[]));
  }

  async lock(id: string, owner: string, ttlMs: number, now: number): Promise<LockState> {
    return value<LockState>(await this.run('lock', this.st.lock, [id, owner, Math.ceil(ttlMs), now]));
  }

  async extendLock(id: string, fence: number, ttlMs: number, now: number): Promise<LockState> {
    return value<LockState>(await this.run('extendLock', this.st.extend, [id, fence, Math.ceil(ttlMs), now]));
  }

  async unlock(id: string, fence: number, now: number): Promise<boolean> {
    return value<boolean>(await this.run('unlock', this.st.unlock, [id, fence, now]));
  }

  /** Up to `limit` expired sessions, SWEEP_BATCH per transaction, soonest-expired first. */
  async sweep(now: number, limit: number): Promise<Ended[]> {
    const out: Ended[] = [];
    while (out.length < limit && !this.closed) {
      const want = Math.min(SWEEP_BATCH, limit - out.length);
      const ended = value<Ended[]>(await this.run('sweep', this.st.sweep, [now, want]));
      for (const e of ended) out.push(e);
      if (ended.length < want) break;
    }
    return out;
  }

  async count(now: number): Promise<number> {
    return Number(((await this.run('count', this.st.count, [now])).rows[0] as unknown[])[0]);
  }

  async stats(now: number): Promise<BackendStats> {
    const [sessions, users, locked] = (await this.run('stats', this.st.stats, [now])).rows[0] as number[];
    return { sessions: Number(sessions), users: Number(users), locked: Number(locked) };
  }

  async scan(afterId: string | null, limit: number, now: number): Promise<SessionRecord[]> {
    return (await this.run('scan', this.st.scan, [afterId ?? '', now, limit])).rows.map((t) => recordOf(t as unknown[]));
  }

  /** From lapse_users' primary key (byte order): the rows from the prefix on, stopping at the first that does not match. */
  async scanUsers(prefix: string, afterUserId: string | null, limit: number, _now: number): Promise<UserCount[]> {
    const out: UserCount[] = [];
    if (!(limit > 0)) return out;
    for (const t of (await this.run('scanUsers', this.st.scanUsers, [prefix, afterUserId ?? '', limit])).rows as [string, number][]) {
      if (!t[0].startsWith(prefix)) break;
      out.push({ userId: t[0], sessions: Number(t[1]) });
    }
    return out;
  }

  async clear(): Promise<void> {
    await this.run('clear', this.st.clear, []);
  }

  async ping(): Promise<void> {
    await this.run('ping', this.st.ping, []);
  }

  /** Hears released leases of every process through LISTEN/NOTIFY, on a connection of its own made on first use. */
  onUnlock(listener: (id: string) => void): () => void {
    this.listeners.add(listener);
    if (!this.listener && !this.closed) {
      this.listener = new UnlockListener(
        () => new pg.Client({ ...this.pool.options, keepAlive: true }),
        this.names.unlockChannel,
        (id) => this.notify(id),
        () => this.log(),
      );
      this.listener.start();
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** A JobLease in the same schema: one run of a job across every process on the database. */
  jobLease(): JobLease {
    this.lease ??= postgresJobLease((what, st, values) => this.run(what, st, values), this.names, namer(this.names));
    return this.lease;
  }

  /** Stops the listener and ends the pool when Lapse made it (a lent pool stays open). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.listeners.clear();
      await this.listener?.close();
      // Let a migration in flight finish before the pool goes.
      await this.migrating?.catch(() => {});
      // An owned pool keeps its error listener: a client the server terminates while it is still
      // ending (a server shutting down) emits one last 'error', which must not crash the process.
      if (this.owned) await this.pool.end();
      else this.pool.off('error', this.onPoolError);
    })();
    return this.closing;
  }

  /** The reads of one moment: one statement; a caller whose session is missing gets null. */
  private async getBatch(ids: string[]): Promise<(SessionRecord | null)[]> {
    if (ids.length === 1) {
      const row = (await this.run('get', this.st.get, ids)).rows[0] as unknown[] | undefined;
      return [row ? recordOf(row) : null];
    }
    const found = new Map<string, SessionRecord>();
    for (const row of (await this.run('get', this.st.getMany, [arrayLiteral([...new Set(ids)])])).rows as unknown[][]) {
      const rec = recordOf(row);
      found.set(rec.id, rec);
    }
    return ids.map((id) => found.get(id) ?? null);
  }

  /** The updates of one moment: one statement, one commit, in id order (the lock order of session rows). */
  private async updateBatch(items: UpdateItem[]): Promise<(SessionRecord | Error | Promise<SessionRecord>)[]> {
    if (items.length === 1) return [await this.updateOne(items[0] as UpdateItem)];
    const order = sortedBy(items, (u) => u.id);
    const sent = order.map((i) => items[i] as UpdateItem);
    const r = await this.run('update', this.st.updateRows, [
      arrayLiteral(sent.map((u) => u.id)),
      arrayLiteral(sent.map((u) => u.data)),
      arrayLiteral(sent.map((u) => u.now)),
      arrayLiteral(sent.map((u) => u.expected)),
      arrayLiteral(sent.map((u) => u.fence)),
    ]);
    const rows = r.rows as unknown[][];
    // One answer per item in the order sent, checked before any is acted on.
    if (rows.length !== sent.length || rows.some((row, k) => row[UPDATE_ROW.id] !== (sent[k] as UpdateItem).id)) {
      throw new Error(`postgres update: the answers do not match the ${sent.length} updates sent`);
    }
    const out = new Array<SessionRecord | Error | Promise<SessionRecord>>(items.length);
    // Rows held elsewhere were skipped (LXBSY): those updates run again, each on its own (it
    // waits for its row as a single call does) while the rest of the batch is answered now; one
    // after another in the order sent, so two writes of one session keep their call order.
    let chain: Promise<unknown> = Promise.resolve();
    for (let k = 0; k < rows.length; k++) {
      const row = rows[k] as unknown[];
      const u = sent[k] as UpdateItem;
      const code = row[UPDATE_ROW.code] as string | null;
      let answer: SessionRecord | Error | Promise<SessionRecord>;
      if (code === null) {
        row[UPDATE_ROW.data] = u.data; // what the row now holds: the text this item sent
        answer = recordOf(row);
      } else if (code === BUSY) {
        const again = chain.then(() => this.updateOne(u));
        chain = again.catch(() => {});
        answer = again;
      } else {
        answer = refusal('update', code, row[UPDATE_ROW.message] as string);
      }
      out[order[k] as number] = answer;
    }
    return out;
  }

  /** One update as its own statement (lapse_update: it waits for its row). */
  private async updateOne(u: UpdateItem): Promise<SessionRecord> {
    return fromJson(value<SessionJson>(await this.run('update', this.st.update, [u.id, u.data, u.now, u.expected, u.fence])));
  }

  /**
   * The inserts of one moment (a lone one too): one statement, one commit, in call order (two
   * sets of one id apply as called); lapse_insert_rows locks the batch's rows in the one lock
   * order first. An item that went in as sent is answered with its own record.
   */
  private async insertBatch(items: InsertItem[]): Promise<(InsertOut | Error)[]> {
    const columns = (items[0] as InsertItem).args.map((_, c) => arrayLiteral(items.map((it) => it.args[c])));
    const rows = (await this.run('insert', this.st.insertRows, columns)).rows as unknown[][];
    if (rows.length !== items.length) throw new Error(`postgres insert: ${rows.length} answers to the ${items.length} inserts sent`);
    return rows.map((row, k) => {
      const code = row[INSERT_ROW.code] as string | null;
      if (code !== null) return refusal('insert', code, row[INSERT_ROW.message] as string);
      const out = row[INSERT_ROW.answer] as { record: SessionJson; ended: Ended[] | null } | null;
      if (out === null) return { record: { ...(items[k] as InsertItem).rec }, ended: [] };
      return { record: fromJson(out.record), ended: out.ended ?? [] };
    });
  }

  /** One named statement, once the schema is ready; failures mapped (errors.ts). */
  private run(what: string, st: Named, values: unknown[]): Promise<QueryResult> {
    if (this.closed) return Promise.reject(errors.closed('postgres backend'));
    if (this.migrated) return this.query(what, st, values, 0);
    return this.ready().then(() => this.query(what, st, values, 0));
  }

  /**
   * Every call is one statement, so one the server aborted (a deadlock it broke, rare: see the
   * lock order in schema.ts) changed nothing and is run again, a bounded number of times.
   */
  private query(what: string, st: Named, values: unknown[], attempt: number): Promise<QueryResult> {
    const p = this.pool.query({ ...st, values });
    if (attempt >= RETRIES) return p.catch(this.failure(what));
    return p.catch((err: unknown) => {
      if (RETRYABLE.has((err as { code?: string }).code ?? '') && !this.closed) return this.query(what, st, values, attempt + 1);
      return this.failure(what)(err);
    });
  }

  /** The rejection handler of one kind of call, made once per name. */
  private failure(what: string): (err: unknown) => never {
    let f = this.failures.get(what);
    if (!f) {
      f = (err: unknown): never => {
        throw mapError(what, err);
      };
      this.failures.set(what, f);
    }
    return f;
  }

  private notify(id: string): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(id);
      } catch (err) {
        this.log().error({ backend: 'postgres', err }, 'onUnlock listener threw');
      }
    }
  }

  private readonly onPoolError = (err: Error): void => {
    const now = Date.now();
    if (this.closed || now - this.lastPoolError < LOG_EVERY_MS) return;
    this.lastPoolError = now;
    this.log().warn({ backend: 'postgres', err: err.message }, 'postgres connection lost; calls fail until the server is back');
  };

  private log(): Logger {
    this.logger ??= defaultLogger();
    return this.logger;
  }
}

/** A batch item whose row another transaction held: skipped, to run again on its own. */
const BUSY = 'LXBSY';

/** Indexes of `items` in the order of `key` (stable: equal keys keep their arrival order). */
function sortedBy<T>(items: T[], key: (t: T) => string): number[] {
  return items.map((_, i) => i).sort((a, b) => {
    const x = key(items[a] as T);
    const y = key(items[b] as T);
    return x < y ? -1 : x > y ? 1 : a - b;
  });
}

/** A batch item's refusal (its SQLSTATE and message) as its LapseError. */
function refusal(what: string, code: string, message: string): Error {
  return mapError(what, Object.assign(new Error(message), { code }));
}

/** The one value a function call returns (`SELECT lapse_x(...) AS r`). */
function value<T>(r: QueryResult): T {
  return (r.rows[0] as { r: T }).r;
}
