import { LapseError } from '../../core/errors.js';

/** Everything that depends on the schema Lapse lives in: quoted names, lock keys, channel, statement names. */
export interface SchemaNames {
  /** The schema as given. */
  schema: string;
  /** The schema as a quoted SQL identifier. */
  q: string;
  /** A short hash of the schema name, in statement and channel names. */
  tag: string;
  /** pg_advisory_xact_lock(...) arguments that serialise writes which change counts. */
  writeLock: string;
  /** pg_advisory_xact_lock(...) arguments that serialise migrations. */
  migrateLock: string;
  /** The LISTEN/NOTIFY channel of released leases. */
  unlockChannel: string;
}

/** The bytes of "Laps" and "Lapm": advisory lock classes of writes and of migrations. */
const WRITE_CLASS = 0x4c617073;
const MIGRATE_CLASS = 0x4c61706d;

/** Checks a schema name and derives the names that follow from it. */
export function schemaNames(schema: unknown): SchemaNames {
  if (typeof schema !== 'string' || schema === '' || Buffer.byteLength(schema) > 63 || schema.includes('\0')) {
    throw new LapseError('LAPSE_INVALID_OPTION', `postgres(): schema must be a name of 1-63 bytes (got ${JSON.stringify(schema)})`);
  }
  const h = fnv32(schema);
  const tag = (h >>> 0).toString(16).padStart(8, '0');
  return {
    schema,
    q: `"${schema.replace(/"/g, '""')}"`,
    tag,
    writeLock: `${WRITE_CLASS}, ${h | 0}`,
    migrateLock: `${MIGRATE_CLASS}, ${h | 0}`,
    unlockChannel: `lapse_unlock_${tag}`,
  };
}

/** FNV-1a over UTF-16 code units: a stable 32-bit hash of a name. */
function fnv32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
