import type { SqliteBackend } from '../packages/lapse/dist/backends/sqlite/backend.js';

/**
 * Writes `rows` expired sessions straight with SQL, in one transaction (benchmark setup, not
 * measured): row x expires at `expiredAt + x`, its user is one of 50,000.
 */
export function fillExpired(b: SqliteBackend, rows: number, expiredAt: number): void {
  b.db.transaction(() =>
    b.db.exec(`
      WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ${rows})
      INSERT INTO lapse_sessions (id, secret_hash, user_id, data, created_at, last_accessed_at, expires_at,
        absolute_expires_at, idle_timeout, access_count, version, recency)
      SELECT 'expired-' || x, 'hash', 'user-' || (x % 50000), '{"n":' || x || '}', ${expiredAt} - 3600000,
        ${expiredAt} - 1800000 + x, ${expiredAt} + x, ${expiredAt} + 36000000, 1800000, 0, 1, x
      FROM n;
    `),
  ).immediate();
  b.db.pragma('wal_checkpoint(TRUNCATE)');
}
