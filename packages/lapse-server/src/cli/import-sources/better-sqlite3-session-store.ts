import Database from 'better-sqlite3';
import { LapseError } from 'lapse/internal';
import type { PeerSession, PeerSource } from './source.js';

const PAGE = 500;

/**
 * Sessions written by better-sqlite3-session-store: table `sessions (sid PRIMARY KEY, sess,
 * expire)` with `expire` an ISO date. Read in sid order on the primary key; the cursor is
 * the last sid. The file is opened read-only: the old app may keep running during the import.
 */
export function betterSqliteSource(file: string, table = 'sessions'): PeerSource {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(table)) throw new LapseError('LAPSE_INVALID_OPTION', `not a table name: ${table}`);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new LapseError('LAPSE_INVALID_OPTION', `cannot open ${file}: ${(err as Error).message}`, { cause: err });
  }
  const first = db.prepare(`SELECT sid, sess, expire FROM ${table} ORDER BY sid LIMIT ?`);
  const after = db.prepare(`SELECT sid, sess, expire FROM ${table} WHERE sid > ? ORDER BY sid LIMIT ?`);
  const count = db.prepare(`SELECT count(*) AS n FROM ${table}`);
  return {
    name: `better-sqlite3-session-store ${file} ${table}`,
    async total() {
      return (count.get() as { n: number }).n;
    },
    async page(cursor) {
      const rows = (cursor === null ? first.all(PAGE) : after.all(cursor, PAGE)) as Array<{ sid: string; sess: string; expire: string }>;
      const sessions: PeerSession[] = rows.map((r) => {
        const at = Date.parse(r.expire);
        return { id: r.sid, text: r.sess, expiresAt: Number.isFinite(at) ? at : null };
      });
      const last = rows[rows.length - 1];
      return { sessions, next: rows.length === PAGE && last ? last.sid : null };
    },
    async close() {
      db.close();
    },
  };
}
