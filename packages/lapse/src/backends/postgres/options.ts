import type { Pool } from 'pg';
import { type Duration, parsePositiveDuration } from '../../core/duration.js';
import { LapseError } from '../../core/errors.js';
import type { Logger } from '../../util/logger.js';

interface Common {
  /** The schema Lapse's tables live in (created on first use when missing), default 'public'. */
  schema?: string;
  /** Longest a call may take, the wait for a pooled connection included; default '5s'. */
  commandTimeout?: Duration;
  /** Where connection problems are logged (default: Lapse's pino logger on stderr). */
  logger?: Logger;
}

/** Connect with a URL (Lapse makes and closes the pool), or lend a pg Pool (it stays yours). */
export type PostgresOptions =
  | (Common & {
      /** postgres://user:password@host:port/database */
      url: string;
      pool?: undefined;
      /** Connections in the pool Lapse makes, default 10. */
      poolSize?: number;
    })
  | (Common & { pool: Pool; url?: undefined; poolSize?: undefined });

export interface ResolvedPostgresOptions {
  url: string | undefined;
  pool: Pool | undefined;
  schema: string;
  poolSize: number;
  timeoutMs: number;
}

/** Checks every option up front; anything wrong is LAPSE_INVALID_OPTION. */
export function resolvePostgresOptions(options: PostgresOptions): ResolvedPostgresOptions {
  const o = (options ?? {}) as Partial<PostgresOptions>;
  const hasUrl = o.url !== undefined;
  const hasPool = o.pool !== undefined;
  if (hasUrl === hasPool) throw new LapseError('LAPSE_INVALID_OPTION', 'postgres(): pass either { url } or { pool }');
  if (hasUrl && (typeof o.url !== 'string' || !/^postgres(ql)?:\/\/.+/.test(o.url))) {
    throw new LapseError('LAPSE_INVALID_OPTION', 'postgres(): url must be a postgres://… URL');
  }
  if (hasPool && typeof (o.pool as { query?: unknown }).query !== 'function') {
    throw new LapseError('LAPSE_INVALID_OPTION', 'postgres(): pool must be a pg Pool');
  }
  const poolSize = o.poolSize ?? 10;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1) {
    throw new LapseError('LAPSE_INVALID_OPTION', `postgres(): poolSize must be a whole number >= 1 (got ${JSON.stringify(poolSize)})`);
  }
  return {
    url: o.url,
    pool: o.pool,
    schema: o.schema ?? 'public',
    poolSize,
    timeoutMs: parsePositiveDuration(o.commandTimeout ?? '5s', 'postgres commandTimeout'),
  };
}
