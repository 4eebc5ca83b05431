import pg from 'pg';
import { expiresAtOf, type SessionRecord } from '../../session.js';
import type { SchemaNames } from './names.js';

/** bigint columns (times, counts, versions, fences) come back as JS numbers: all stay below 2^53. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** A named (prepared once per connection) statement; each call adds its values. */
export interface Named {
  name: string;
  text: string;
  types: typeof TYPES;
  rowMode?: 'array';
}

/** The columns a record is read with, in the order fromTuple takes them. */
const RECORD_COLUMNS =
  'id, secret_hash, user_id, data, created_at, last_accessed_at, absolute_expires_at, idle_timeout, ' +
  'access_count, version, lock_owner, lock_fence, lock_expires_at, ip, user_agent';

/** Makes named statements of one schema: the name carries the schema's tag, so two schemas never share one. */
export function namer(n: SchemaNames): (key: string, text: string, rowMode?: 'array') => Named {
  return (key, text, rowMode) => ({ name: `lapse_${n.tag}_${key}`, text, types: TYPES, ...(rowMode ? { rowMode } : {}) });
}

/** Every statement Lapse sends, by name; the hot ones are plain statements, the policies functions (schema.ts). */
export function statements(n: SchemaNames) {
  const s = n.q;
  const named = namer(n);
  const call = (fn: string, args: number) =>
    named(fn, `SELECT ${s}.lapse_${fn}(${Array.from({ length: args }, (_, i) => `$${i + 1}`).join(', ')}) AS r`);
  return {
    get: named('get', `SELECT ${RECORD_COLUMNS} FROM ${s}.lapse_sessions WHERE id = $1`, 'array'),
    /** The expiry rule (expiresAtOf) in SQL; SET expressions all read the row as it was. */
    touch: named(
      'touch',
      `UPDATE ${s}.lapse_sessions SET last_accessed_at = greatest(last_accessed_at, $2),
        expires_at = least(greatest(last_accessed_at, $2) + idle_timeout, absolute_expires_at),
        access_count = access_count + $3, recency = nextval('${s}.lapse_recency')
      WHERE id = $1 AND expires_at > $4 RETURNING ${RECORD_COLUMNS}`,
      'array',
    ),
    listUser: named(
      'list_user',
      `SELECT ${RECORD_COLUMNS} FROM ${s}.lapse_sessions WHERE user_id = $1 AND expires_at > $2 ORDER BY recency DESC`,
      'array',
    ),
    scan: named(
      'scan',
      `SELECT ${RECORD_COLUMNS} FROM ${s}.lapse_sessions WHERE id > $1 AND expires_at > $2 ORDER BY id LIMIT $3`,
      'array',
    ),
    // Stored minus expired-not-yet-swept: the second part reads only the expiry index's head.
    count: named(
      'count',
      `SELECT (SELECT sum(sessions) FROM ${s}.lapse_counters)
        - (SELECT count(*) FROM ${s}.lapse_sessions WHERE expires_at <= $1)`,
      'array',
    ),
    stats: named(
      'stats',
      `SELECT (SELECT sum(sessions) FROM ${s}.lapse_counters), (SELECT sum(users) FROM ${s}.lapse_counters),
        (SELECT count(*) FROM ${s}.lapse_sessions WHERE lock_expires_at > $1)`,
      'array',
    ),
    ping: named('ping', 'SELECT 1', 'array'),
    insert: call('insert', 21),
    update: call('update', 5),
    remove: call('remove', 4),
    rotate: call('rotate', 5),
    removeUser: call('remove_user', 3),
    sweep: call('sweep', 2),
    lock: call('lock', 4),
    extend: call('extend', 4),
    unlock: call('unlock', 3),
    clear: call('clear', 0),
  };
}

export type Statements = ReturnType<typeof statements>;

/** A row of the array-mode reads (RECORD_COLUMNS) as a record; expiresAt follows from the expiry rule. */
export function fromTuple(t: unknown[]): SessionRecord {
  const [id, secretHash, userId, data, createdAt, lastAccessedAt, absoluteExpiresAt, idleTimeout, accessCount, version,
    lockOwner, lockFence, lockExpiresAt, ip, userAgent] = t as [
    string, string, string | null, string, number, number, number, number, number, number,
    string | null, number | null, number | null, string | null, string | null,
  ];
  return {
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
  };
}

/** A row of lapse_sessions as the functions return it (row_to_json), as a record. */
export interface SessionJson {
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
  lock_owner: string | null;
  lock_fence: number | null;
  lock_expires_at: number | null;
  ip: string | null;
  user_agent: string | null;
}

export function fromJson(r: SessionJson): SessionRecord {
  return {
    id: r.id,
    secretHash: r.secret_hash,
    userId: r.user_id,
    data: r.data,
    createdAt: r.created_at,
    lastAccessedAt: r.last_accessed_at,
    expiresAt: r.expires_at,
    absoluteExpiresAt: r.absolute_expires_at,
    idleTimeout: r.idle_timeout,
    accessCount: r.access_count,
    version: r.version,
    lock: r.lock_fence === null ? null : { owner: r.lock_owner ?? '', fence: r.lock_fence, expiresAt: r.lock_expires_at ?? 0 },
    ip: r.ip,
    userAgent: r.user_agent,
  };
}

/** A record as the insert function's arguments 1-16. */
export function insertArgs(rec: SessionRecord): unknown[] {
  return [
    rec.id, rec.secretHash, rec.userId, rec.data, rec.createdAt, rec.lastAccessedAt, rec.expiresAt,
    rec.absoluteExpiresAt, rec.idleTimeout, rec.accessCount, rec.version, rec.lock?.owner ?? null,
    rec.lock?.fence ?? null, rec.lock?.expiresAt ?? null, rec.ip, rec.userAgent,
  ];
}
