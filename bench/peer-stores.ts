/**
 * The express-session stores Lapse is measured against, built the way their READMEs show:
 * MemoryStore, better-sqlite3-session-store on a file in `dir`, connect-redis on `redisUrl`,
 * connect-pg-simple on `pg.url` (its own table, created when missing; a pool of `pg.poolSize`).
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type session from 'express-session';

export type PeerName = 'memorystore' | 'better-sqlite3-session-store' | 'connect-redis' | 'connect-pg-simple';

export async function peerStore(
  name: PeerName,
  express: typeof session,
  redisUrl: string,
  dir: string,
  redisPrefix: string,
  pgOptions?: { url: string; poolSize: number },
): Promise<session.Store> {
  if (name === 'memorystore') return new express.MemoryStore();
  if (name === 'connect-pg-simple') {
    if (!pgOptions) throw new Error('connect-pg-simple needs a PostgreSQL url');
    const { default: pg } = await import('pg');
    const { default: connectPg } = (await import('connect-pg-simple' as string)) as { default: (s: unknown) => new (o: object) => session.Store };
    const PgStore = connectPg(express);
    // Pruning off: no timer fires in a bench run, and its first prune would run mid-measurement.
    return new PgStore({ pool: new pg.Pool({ connectionString: pgOptions.url, max: pgOptions.poolSize }), createTableIfMissing: true, pruneSessionInterval: false });
  }
  if (name === 'better-sqlite3-session-store') {
    const require = createRequire(import.meta.url);
    const Database = (await import('better-sqlite3')).default;
    const SqliteStore = require('better-sqlite3-session-store')(express);
    return new SqliteStore({ client: new Database(join(dir, 'peer.db')) });
  }
  const { default: RedisStore } = await import('connect-redis');
  const { Redis } = await import('ioredis');
  return new RedisStore({ client: new Redis(redisUrl), prefix: redisPrefix });
}
