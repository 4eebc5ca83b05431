import { pg } from './driver.js';
import type { SessionRecord } from '../../core/session.js';
import { fromTuple, ID_COLUMN, type SessionRow, toRecord } from '../sqlite/statements.js';
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

/**
 * The columns a record is read with: the SQLite backend's order (its fromTuple maps them, and
 * the same conversions apply), then the id.
 */
const RECORD_COLUMNS =
  'secret_hash, user_id, data, created_at, last_accessed_at, absolute_expires_at, idle_timeout, ' +
  'access_count, version, lock_owner, lock_fence, lock_expires_at, ip, user_agent, id';

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
    // Both id columns are COLLATE "C" (schema v3): the primary keys' order is byte order.
    scanUsers: named(
      'scan_users',
      `SELECT user_id, sessions FROM ${s}.lapse_users WHERE user_id >= $1 AND user_id > $2 ORDER BY user_id LIMIT $3`,
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
    /** Group commit (backend.ts): the reads, updates and inserts of one moment, one statement each. */
    getMany: named('get_many', `SELECT ${RECORD_COLUMNS} FROM ${s}.lapse_sessions WHERE id = ANY ($1::text[])`, 'array'),
    /** One row per item, in the order sent: RECORD_COLUMNS (data null: the caller has it), then code and message of a refusal. */
    updateRows: named(
      'update_rows',
      `SELECT * FROM ${s}.lapse_update_rows($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])`,
      'array',
    ),
    /** One row per item, in the order sent: lapse_insert's JSON answer (null: inserted as sent, nothing ended), then code and message of a refusal. */
    insertRows: named(
      'insert_rows',
      `SELECT * FROM ${s}.lapse_insert_rows($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
        $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::text[], $13::bigint[], $14::bigint[], $15::text[],
        $16::text[], $17::bigint[], $18::bigint[], $19::bigint[], $20::boolean[], $21::bigint[])`,
      'array',
    ),
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

/** Where lapse_update_rows puts data (left null), the item's id, and its refusal: SQLSTATE and message. */
export const UPDATE_ROW = { data: 2, id: ID_COLUMN, code: 15, message: 16 } as const;

/** Where lapse_insert_rows puts an item's answer (JSON, or null when it went in as sent) and its refusal. */
export const INSERT_ROW = { answer: 0, code: 1, message: 2 } as const;

/** A row of the array-mode reads (RECORD_COLUMNS) as a record; expiresAt follows from the expiry rule. */
export function recordOf(t: unknown[]): SessionRecord {
  return fromTuple(t[ID_COLUMN] as string, t);
}

/** A row of lapse_sessions as the functions return it (row_to_json): the SQLite backend's row shape, less its slot. */
export type SessionJson = Omit<SessionRow, 'slot'>;

/** A function's row as a record. */
export function fromJson(r: SessionJson): SessionRecord {
  return toRecord(r as SessionRow);
}

/** A record as the insert function's arguments 1-16. */
export function insertArgs(rec: SessionRecord): unknown[] {
  return [
    rec.id, rec.secretHash, rec.userId, rec.data, rec.createdAt, rec.lastAccessedAt, rec.expiresAt,
    rec.absoluteExpiresAt, rec.idleTimeout, rec.accessCount, rec.version, rec.lock?.owner ?? null,
    rec.lock?.fence ?? null, rec.lock?.expiresAt ?? null, rec.ip, rec.userAgent,
  ];
}
