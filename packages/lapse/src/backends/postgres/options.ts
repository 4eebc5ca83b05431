import type { Pool } from 'pg';
import { type Duration, parsePositiveDuration } from '../../core/duration.js';
import { LapseError } from '../../core/errors.js';
import type { Logger } from '../../util/logger.js';

const DEFAULT_STATEMENT_TIMEOUT_MS = 3_000;

interface Common {
  /** The schema Lapse's tables live in (created on first use when missing), default 'public'. */
  schema?: string;
  /** Longest a call may take, the wait for a pooled connection included; default '5s'. */
  commandTimeout?: Duration;
  /**
   * Server-side bound on each statement (PostgreSQL's `statement_timeout`, lock waits
   * included) on the pool Lapse makes: the server aborts it and frees the connection, the
   * call fails as LAPSE_BACKEND_UNAVAILABLE. Default the smaller of '3s' and commandTimeout;
   * at most commandTimeout. A lent pool keeps its own settings (docs/postgres.md).
   */
  statementTimeout?: Duration;
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
  statementTimeoutMs: number;
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
  const timeoutMs = parsePositiveDuration(o.commandTimeout ?? '5s', 'postgres commandTimeout');
  const statementTimeoutMs =
    o.statementTimeout === undefined ? Math.min(DEFAULT_STATEMENT_TIMEOUT_MS, timeoutMs) : parsePositiveDuration(o.statementTimeout, 'postgres statementTimeout');
  if (statementTimeoutMs > timeoutMs) {
    // The client would give up first and leave the statement running on a connection it then reuses.
    throw new LapseError('LAPSE_INVALID_OPTION', `postgres(): statementTimeout (${statementTimeoutMs} ms) must not exceed commandTimeout (${timeoutMs} ms)`);
  }
  return { url: o.url, pool: o.pool, schema: o.schema ?? 'public', poolSize, timeoutMs, statementTimeoutMs };
}
