/**
 * The express-session stores Lapse is measured against, built the way their READMEs show:
 * MemoryStore, better-sqlite3-session-store on a file in `dir`, connect-redis on `redisUrl`.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type session from 'express-session';

export type PeerName = 'memorystore' | 'better-sqlite3-session-store' | 'connect-redis';

export async function peerStore(name: PeerName, express: typeof session, redisUrl: string, dir: string, redisPrefix: string): Promise<session.Store> {
  if (name === 'memorystore') return new express.MemoryStore();
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
