/**
 * Where a session lives in the SQLite table: its slot, the table's INTEGER PRIMARY KEY.
 *
 * A session's home slot is a 52-bit hash of its id, so a read by id is one search of the table's
 * own B-tree. A TEXT primary key would be two: its index for the rowid, then the table for the
 * row. In the rare case that another session already holds an id's home slot (about one chance
 * in 2^52 per pair of live sessions), the id gets a negative slot instead (one below the lowest
 * in use), and reads that do not find an id at home look it up by its UNIQUE index (see
 * SqliteBackend.get).
 *
 * This function is part of the file format: files in the field hold rows at these slots, and
 * the v1 -> v2 migration calls it from SQL (as `lapse_home_slot`). Never change it.
 */
export function homeSlot(id: string): number {
  // Two FNV-1a lanes over the UTF-16 code units, each finished with murmur3's fmix32.
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ id.length;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  return (fmix32(a) >>> 0) * 0x100000 + (fmix32(b) >>> 12);
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Its name in SQL, registered on every connection Lapse opens (the v1 -> v2 migration needs it). */
export const HOME_SLOT_SQL = 'lapse_home_slot';
