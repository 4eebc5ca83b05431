import type { JobLease } from '../../core/backend.js';
import type { Clock } from '../../core/clock.js';
import { newId } from '../../core/token.js';
import type { Db } from './open.js';

/** Expired keys removed per acquire: the Scheduler never releases slot keys, so they must go somewhere. */
const PRUNE_PER_CALL = 8;

/**
 * A JobLease kept in the `lapse_leases` table, so that every process sharing the file
 * agrees on who runs a job. Expiry follows `clock` (wall time: processes on one host share it).
 */
export function sqliteJobLease(db: Db, clock: Clock): JobLease {
  const prune = db.prepare(
    'DELETE FROM lapse_leases WHERE key IN (SELECT key FROM lapse_leases WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)',
  );
  // Insert, or take over a row whose lease has run out; a live row is left alone.
  const take = db.prepare(
    `INSERT INTO lapse_leases (key, token, expires_at) VALUES (@key, @token, @expiresAt)
     ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
     WHERE lapse_leases.expires_at <= @now`,
  );
  const renew = db.prepare('UPDATE lapse_leases SET expires_at = ? WHERE key = ? AND token = ? AND expires_at > ?');
  const release = db.prepare('DELETE FROM lapse_leases WHERE key = ? AND token = ?');

  const acquire = db.transaction((key: string, ttlMs: number): string | null => {
    const now = clock.now();
    prune.run(now, PRUNE_PER_CALL);
    const token = newId();
    return take.run({ key, token, expiresAt: now + ttlMs, now }).changes === 1 ? token : null;
  });

  return {
    async acquire(key, ttlMs) {
      return acquire.immediate(key, ttlMs);
    },
    async renew(key, token, ttlMs) {
      const now = clock.now();
      return renew.run(now + ttlMs, key, token, now).changes === 1;
    },
    async release(key, token) {
      release.run(key, token);
    },
  };
}
