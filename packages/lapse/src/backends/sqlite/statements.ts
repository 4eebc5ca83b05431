import type { Statement } from 'better-sqlite3';
import { expiresAtOf, type SessionRecord } from '../../core/session.js';
import type { ParsedSlot } from '../../core/parsed-data.js';
import type { Db } from './open.js';
import { homeSlot } from './slot.js';

/** A row of lapse_sessions as better-sqlite3 returns it. */
export interface SessionRow {
  /** Where the row lives (see slot.ts). */
  slot: number;
  id: string;
  secret_hash: string;
  user_id: string | null;
  data: string;
  created_at: number;
  last_accessed_at: number;
  expires_at: number;
  absolute_expires_at: number;
  idle_timeout: number;
  access_count: number;
  version: number;
  recency: number;
  lock_owner: string | null;
  lock_fence: number | null;
  lock_expires_at: number | null;
  ip: string | null;
  user_agent: string | null;
}

/** The columns an ended session is reported with. */
export interface EndedRow {
  id: string;
  user_id: string | null;
  expires_at: number;
  absolute_expires_at: number;
}

/**
 * The columns of a record, in the order `fromTuple` reads them. Not `id` (the caller has it;
 * the reads add it last, to check whom the slot holds) nor `expires_at` (it follows from the
 * expiry rule): every column returned costs a conversion to a JS value, and the read path is
 * the hottest there is.
 */
const RECORD_COLUMNS =
  'secret_hash, user_id, data, created_at, last_accessed_at, absolute_expires_at, idle_timeout, ' +
  'access_count, version, lock_owner, lock_fence, lock_expires_at, ip, user_agent';
/** Where the `read` and `readById` tuples carry the id: right after RECORD_COLUMNS. */
export const ID_COLUMN = RECORD_COLUMNS.split(',').length;

// Recency is the order of last access, one step per touch, tie-free within a millisecond.
// max() over its index is one seek, so no counter row is needed.
const NEXT_RECENCY = '(SELECT coalesce(max(recency), 0) + 1 FROM lapse_sessions)';
/**
 * The slot of a session: its home slot (@slot, see slot.ts), or, when another session holds
 * that, one below the lowest slot in use and never above -1. min() over the primary key is
 * one seek.
 */
const SLOT = `CASE WHEN EXISTS (SELECT 1 FROM lapse_sessions WHERE slot = @slot)
      THEN (SELECT min(coalesce(min(slot), 0), 0) - 1 FROM lapse_sessions) ELSE @slot END`;
const ENDED = 'id, user_id, expires_at, absolute_expires_at';

/**
 * Every statement Lapse runs, as text. The hot ones are exported by name so the query-plan
 * test explains exactly what runs.
 */
export const SQL = {
  get: 'SELECT * FROM lapse_sessions WHERE id = ? AND expires_at > ?',
  /**
   * The read path: the row at an id's home slot (see slot.ts), as positional columns (no
   * per-row key objects) mapped by fromTuple, with the id last for the caller to check. The
   * caller checks expiry on the record (one parameter less to bind and test per read).
   */
  read: `SELECT ${RECORD_COLUMNS}, id FROM lapse_sessions WHERE slot = ?`,
  /** The read path for an id not at its home slot: the same columns, by the id's index. */
  readById: `SELECT ${RECORD_COLUMNS}, id FROM lapse_sessions WHERE id = ?`,
  getAny: 'SELECT * FROM lapse_sessions WHERE id = ?',
  exists: 'SELECT 1 FROM lapse_sessions WHERE id = ?',
  insert: `INSERT INTO lapse_sessions (slot, id, secret_hash, user_id, data, created_at, last_accessed_at, expires_at,
      absolute_expires_at, idle_timeout, access_count, version, recency, lock_owner, lock_fence, lock_expires_at, ip, user_agent)
    VALUES (${SLOT}, @id, @secret_hash, @user_id, @data, @created_at, @last_accessed_at, @expires_at, @absolute_expires_at,
      @idle_timeout, @access_count, @version, ${NEXT_RECENCY}, @lock_owner, @lock_fence, @lock_expires_at, @ip, @user_agent)`,
  replace: `UPDATE lapse_sessions SET secret_hash = @secret_hash, user_id = @user_id, data = @data,
      last_accessed_at = @last_accessed_at, expires_at = @expires_at, idle_timeout = @idle_timeout, ip = @ip,
      user_agent = @user_agent, version = version + 1, recency = ${NEXT_RECENCY}
    WHERE id = @id RETURNING *`,
  /**
   * One statement per touch, the expiry rule (expiresAtOf) in SQL: the later of the two access
   * times, capped by the absolute expiry. SET expressions all read the row as it was.
   */
  touch: `UPDATE lapse_sessions SET last_accessed_at = max(last_accessed_at, @at),
      expires_at = min(max(last_accessed_at, @at) + idle_timeout, absolute_expires_at),
      access_count = access_count + @accesses, recency = ${NEXT_RECENCY}
    WHERE id = @id AND expires_at > @now RETURNING ${RECORD_COLUMNS}`,
  setData: 'UPDATE lapse_sessions SET data = ?, version = version + 1 WHERE id = ? RETURNING *',
  /**
   * An update as one statement, its checks in the WHERE clause (live, no lease in force but
   * the caller's, the expected version): one autocommit statement, no transaction around it,
   * no read first. Parameters: data, id, now, now, fence, expected version, the same again.
   * No row back: nothing was written, and a read says why (see SessionOps.updateOne).
   */
  updateData: `UPDATE lapse_sessions SET data = ?, version = version + 1
    WHERE id = ? AND expires_at > ?
      AND (lock_fence IS NULL OR coalesce(lock_expires_at, 0) <= ? OR lock_fence IS ?)
      AND (? IS NULL OR version = ?)
    RETURNING ${RECORD_COLUMNS}`,
  remove: 'DELETE FROM lapse_sessions WHERE id = ?',
  rotate: `UPDATE lapse_sessions SET slot = ${SLOT}, id = @next, secret_hash = @secret_hash, last_accessed_at = @now,
      expires_at = @expires_at, lock_owner = NULL, lock_fence = NULL, lock_expires_at = NULL, recency = ${NEXT_RECENCY}
    WHERE id = @id RETURNING *`,
  removeUser: `DELETE FROM lapse_sessions WHERE user_id = ? AND id IS NOT ? RETURNING ${ENDED}`,
  listUser: 'SELECT * FROM lapse_sessions WHERE user_id = ? AND expires_at > ? ORDER BY recency DESC',
  userCount: 'SELECT sessions FROM lapse_users WHERE user_id = ?',
  userLru: `SELECT ${ENDED} FROM lapse_sessions WHERE user_id = ? ORDER BY recency LIMIT 1`,
  soonest: `SELECT ${ENDED} FROM lapse_sessions ORDER BY expires_at LIMIT 1`,
  lru: `SELECT ${ENDED} FROM lapse_sessions ORDER BY recency LIMIT 1`,
  nextFence: "UPDATE lapse_meta SET value = value + 1 WHERE key = 'fence' RETURNING value",
  setLock: 'UPDATE lapse_sessions SET lock_owner = ?, lock_fence = ?, lock_expires_at = ? WHERE id = ?',
  sweep: `DELETE FROM lapse_sessions WHERE rowid IN (
      SELECT rowid FROM lapse_sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?
    ) RETURNING ${ENDED}`,
  counter: 'SELECT value FROM lapse_meta WHERE key = ?',
  due: 'SELECT count(*) FROM lapse_sessions WHERE expires_at <= ?',
  locked: 'SELECT count(*) FROM lapse_sessions WHERE lock_expires_at > ?',
  scan: 'SELECT * FROM lapse_sessions WHERE id > ? AND expires_at > ? ORDER BY id LIMIT ?',
  // The primary key of lapse_users is the user id index (BINARY collation: byte order).
  scanUsers: 'SELECT user_id AS userId, sessions FROM lapse_users WHERE user_id >= ? AND user_id > ? ORDER BY user_id LIMIT ?',
  clear: 'DELETE FROM lapse_sessions',
  ping: 'SELECT 1',
} as const;

export type StatementName = keyof typeof SQL;

/** Prepares every statement once; better-sqlite3 keeps them compiled for the life of the connection. */
export function prepareAll(db: Db): Record<StatementName, Statement> {
  const out = {} as Record<StatementName, Statement>;
  for (const name of Object.keys(SQL) as StatementName[]) out[name] = db.prepare(SQL[name]);
  // Single values come back bare; the read path takes positional rows (see fromTuple).
  for (const name of ['userCount', 'counter', 'due', 'locked', 'nextFence', 'exists'] as const) out[name].pluck();
  out.read.raw();
  out.readById.raw();
  out.touch.raw();
  out.updateData.raw();
  return out;
}

/** A row as the SessionRecord backends hand out (its data parsed through the store's cache: see fromTuple). */
export function toRecord(row: SessionRow): SessionRecord {
  const rec: SessionRecord & ParsedSlot = {
    id: row.id,
    secretHash: row.secret_hash,
    userId: row.user_id,
    data: row.data,
    createdAt: row.created_at,
    lastAccessedAt: row.last_accessed_at,
    expiresAt: row.expires_at,
    absoluteExpiresAt: row.absolute_expires_at,
    idleTimeout: row.idle_timeout,
    accessCount: row.access_count,
    version: row.version,
    lock:
      row.lock_fence === null
        ? null
        : { owner: row.lock_owner ?? '', fence: row.lock_fence, expiresAt: row.lock_expires_at ?? 0 },
    ip: row.ip,
    userAgent: row.user_agent,
    parsedData: undefined,
  };
  return rec;
}

type Tuple = [
  string, string | null, string, number, number, number, number,
  number, number, string | null, number | null, number | null, string | null, string | null,
];

/**
 * A row of the `read` statement (raw mode) of session `id` as a record. `parsedData` null (the
 * read path's records) gives the record a parse of its own (ParsedSlot): the store parses its
 * data once into the record, with no lookup in its parsed-data cache first, and a record the
 * read cache hands out again is not parsed again. Sound because the backend never changes a
 * record it handed out: a write makes a new one. Undefined (the write paths', a backend with no
 * read cache, and PostgreSQL's records) keeps the parse in the store's cache, looked up by id.
 */
export function fromTuple(id: string, t: unknown[], parsedData: null | undefined = undefined): SessionRecord {
  const [secretHash, userId, data, createdAt, lastAccessedAt, absoluteExpiresAt, idleTimeout,
    accessCount, version, lockOwner, lockFence, lockExpiresAt, ip, userAgent] = t as Tuple;
  const rec: SessionRecord & ParsedSlot = {
    id,
    secretHash,
    userId,
    data,
    createdAt,
    lastAccessedAt,
    expiresAt: expiresAtOf(lastAccessedAt, idleTimeout, absoluteExpiresAt),
    absoluteExpiresAt,
    idleTimeout,
    accessCount,
    version,
    lock: lockFence === null ? null : { owner: lockOwner ?? '', fence: lockFence, expiresAt: lockExpiresAt ?? 0 },
    ip,
    userAgent,
    parsedData,
  };
  return rec;
}

/** A record as named parameters for the insert statement. */
export function toParams(rec: SessionRecord): Omit<SessionRow, 'recency'> {
  return {
    slot: homeSlot(rec.id),
    id: rec.id,
    secret_hash: rec.secretHash,
    user_id: rec.userId,
    data: rec.data,
    created_at: rec.createdAt,
    last_accessed_at: rec.lastAccessedAt,
    expires_at: rec.expiresAt,
    absolute_expires_at: rec.absoluteExpiresAt,
    idle_timeout: rec.idleTimeout,
    access_count: rec.accessCount,
    version: rec.version,
    lock_owner: rec.lock?.owner ?? null,
    lock_fence: rec.lock?.fence ?? null,
    lock_expires_at: rec.lock?.expiresAt ?? null,
    ip: rec.ip,
    user_agent: rec.userAgent,
  };
}
