import type { QueryResult } from 'pg';
import type { JobLease } from '../../core/backend.js';
import { newId } from '../../core/token.js';
import type { SchemaNames } from './names.js';
import { DB_NOW_MS } from './schema.js';
import type { Named } from './statements.js';

/** Runs one named statement with its values (the backend's bounded, mapped call). */
export type Run = (what: string, st: Named, values: unknown[]) => Promise<QueryResult>;

/** Expired keys removed per acquire: the Scheduler never releases slot keys, so they must go somewhere. */
const PRUNE_PER_CALL = 8;

/**
 * A JobLease as a row of `lapse_leases`: every process on the database agrees on who runs a
 * job, with no extra service. Lease time is the database's clock, which every node shares.
 * A row, not an advisory lock: a session-level advisory lock would pin a pooled connection
 * for the whole run, and die with it.
 */
export function postgresJobLease(run: Run, n: SchemaNames, named: (key: string, text: string) => Named): JobLease {
  const s = n.q;
  // Takes a free or run-out key, and prunes a few other run-out ones on the way (never this
  // key: one statement must not change the same row twice).
  const take = named(
    'lease_take',
    `WITH pruned AS (DELETE FROM ${s}.lapse_leases WHERE key IN (SELECT key FROM ${s}.lapse_leases
        WHERE expires_at <= ${DB_NOW_MS} AND key <> $1 ORDER BY expires_at LIMIT ${PRUNE_PER_CALL} FOR UPDATE SKIP LOCKED))
     INSERT INTO ${s}.lapse_leases AS l (key, token, expires_at) VALUES ($1, $2, ${DB_NOW_MS} + $3)
     ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
       WHERE l.expires_at <= ${DB_NOW_MS}
     RETURNING token`,
  );
  const renew = named(
    'lease_renew',
    `UPDATE ${s}.lapse_leases SET expires_at = ${DB_NOW_MS} + $3 WHERE key = $1 AND token = $2 AND expires_at > ${DB_NOW_MS}`,
  );
  const release = named('lease_release', `DELETE FROM ${s}.lapse_leases WHERE key = $1 AND token = $2`);
  const ms = (ttlMs: number) => Math.max(1, Math.ceil(ttlMs));
  return {
    async acquire(key, ttlMs) {
      const token = newId();
      const r = await run('job lease acquire', take, [key, token, ms(ttlMs)]);
      return r.rowCount === 1 ? token : null;
    },
    async renew(key, token, ttlMs) {
      return (await run('job lease renew', renew, [key, token, ms(ttlMs)])).rowCount === 1;
    },
    async release(key, token) {
      await run('job lease release', release, [key, token]);
    },
  };
}
