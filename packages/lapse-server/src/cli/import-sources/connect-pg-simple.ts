import pg from 'pg';
import { LapseError } from 'lapse/internal';
import type { PeerSession, PeerSource } from './source.js';

const PAGE = 500;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Sessions written by connect-pg-simple: table `session (sid PRIMARY KEY, sess json, expire
 * timestamp)`. Read in sid order on the primary key; the cursor is the last sid. `expire` is
 * a timestamp without time zone written in the session's TimeZone, so it is read back through
 * the same conversion.
 */
export function connectPgSimpleSource(url: string, table = 'session', schema?: string): PeerSource {
  for (const name of [table, schema ?? 'public']) {
    if (!IDENT.test(name)) throw new LapseError('LAPSE_INVALID_OPTION', `not a table or schema name: ${name}`);
  }
  const quoted = schema ? `"${schema}"."${table}"` : `"${table}"`;
  const client = new pg.Client({ connectionString: url });
  let connected: Promise<unknown> | undefined;
  const query = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) => {
    connected ??= client.connect();
    await connected;
    return (await client.query<R>(text, values)).rows;
  };
  const columns = `sid, sess::text AS sess, (extract(epoch FROM expire::timestamptz) * 1000)::float8 AS expire`;
  return {
    name: `connect-pg-simple ${url} ${quoted}`,
    async total() {
      const [row] = await query<{ n: string }>(`SELECT count(*) AS n FROM ${quoted}`);
      return Number(row?.n ?? 0);
    },
    async page(cursor) {
      const rows = await query<{ sid: string; sess: string; expire: number | null }>(
        cursor === null
          ? `SELECT ${columns} FROM ${quoted} ORDER BY sid LIMIT $1`
          : `SELECT ${columns} FROM ${quoted} WHERE sid > $2 ORDER BY sid LIMIT $1`,
        cursor === null ? [PAGE] : [PAGE, cursor],
      );
      const sessions: PeerSession[] = rows.map((r) => ({ id: r.sid, text: r.sess, expiresAt: r.expire ?? null }));
      const last = rows[rows.length - 1];
      return { sessions, next: rows.length === PAGE && last ? last.sid : null };
    },
    async close() {
      if (connected) await client.end();
    },
  };
}
