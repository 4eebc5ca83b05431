import type { Clock } from '../../core/clock.js';
import { type Duration, parseDuration, parsePositiveDuration } from '../../core/duration.js';
import { cacheEntries } from '../../util/generational-map.js';
import { errors } from '../../core/errors.js';
import type { Logger } from '../../util/logger.js';

export interface SqliteOptions {
  /** The database file (created with its folder when missing); ':memory:' for a private in-memory one. */
  path: string;
  /** How long a call waits for another process's write lock before it fails (default '5s'). */
  busyTimeout?: Duration;
  /** 'normal' (default): no commit lost when a process dies. 'full': none lost when the OS dies either; slower commits. */
  synchronous?: 'normal' | 'full';
  /**
   * How often a worker thread copies the WAL back into the file (default '200ms'), so that
   * checkpoint I/O and fsync never run on the event loop. false: SQLite's own autocheckpoint
   * (every 1000 pages, inside the commit that crosses it).
   */
  checkpointInterval?: Duration | false;
  /** Page cache of this connection in MiB (default 32). */
  cacheSizeMiB?: number;
  /**
   * How many recently read sessions `get` keeps in memory (default 10000; 0 turns it off).
   * Coherent across processes: any commit by another connection empties it.
   */
  readCache?: number;
  /**
   * How long one look at whether another connection committed holds for cache hits
   * (default '1ms'; 0: look before every hit). Own writes are always seen at once; another
   * process's commit reaches this process's cache hits within this long.
   */
  readCacheRecheck?: Duration;
  /** Clock of the job lease (the store passes `now` to everything else). */
  clock?: Clock;
  /** Where checkpoint failures are reported (default: Lapse's pino logger on stderr). */
  logger?: Logger;
}

export interface ResolvedSqliteOptions {
  path: string;
  /** ':memory:' (or ''): no file, no WAL, no checkpoint worker. */
  memory: boolean;
  busyTimeoutMs: number;
  synchronous: 'normal' | 'full';
  checkpointIntervalMs: number | false;
  cacheSizeMiB: number;
  readCache: number;
  readCacheRecheckMs: number;
}

/** Checks every option up front; anything wrong is LAPSE_INVALID_OPTION. */
export function resolveSqliteOptions(options: SqliteOptions): ResolvedSqliteOptions {
  if (!options || typeof options.path !== 'string') {
    throw errors.optionMustBe('sqlite: options.path', "a file path (or ':memory:')");
  }
  const synchronous = options.synchronous ?? 'normal';
  if (synchronous !== 'normal' && synchronous !== 'full') {
    throw errors.optionMustBe('sqlite: synchronous', "'normal' or 'full'", synchronous);
  }
  const readCache = cacheEntries(options.readCache, 10_000, 'sqlite: readCache');
  const cacheSizeMiB = options.cacheSizeMiB ?? 32;
  if (typeof cacheSizeMiB !== 'number' || !(cacheSizeMiB > 0)) {
    throw errors.optionMustBe('sqlite: cacheSizeMiB', 'a number > 0', cacheSizeMiB);
  }
  const memory = options.path === ':memory:' || options.path === '';
  const every = options.checkpointInterval;
  return {
    path: options.path,
    memory,
    busyTimeoutMs: parseDuration(options.busyTimeout ?? '5s', 'sqlite busyTimeout'),
    synchronous,
    checkpointIntervalMs: every === false || memory ? false : parsePositiveDuration(every ?? '200ms', 'sqlite checkpointInterval'),
    cacheSizeMiB,
    readCache,
    readCacheRecheckMs: parseDuration(options.readCacheRecheck ?? '1ms', 'sqlite readCacheRecheck'),
  };
}
