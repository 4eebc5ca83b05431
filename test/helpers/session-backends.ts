/**
 * Every backend a store-level test runs on: memory, a SQLite file, a real redis-server and a
 * real PostgreSQL (one of each per test file, started in beforeAll; a random key prefix or
 * schema per backend). Without redis-server or PostgreSQL those are left out, except under
 * CI=true, where starting them fails the file.
 */
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { Backend } from '../../packages/lapse/src/core/backend.js';
import { memory } from '../../packages/lapse/src/backends/memory/memory.js';
import { postgres } from '../../packages/lapse/src/backends/postgres/index.js';
import { redis } from '../../packages/lapse/src/backends/redis/backend.js';
import { sqlite } from '../../packages/lapse/src/backends/sqlite/backend.js';
import type { ManualClock } from '../../packages/lapse/src/core/clock.js';
import { silentLogger } from '../../packages/lapse/src/util/logger.js';
import { type PostgresServer, postgresAvailable, randomName, startPostgres } from './postgres-server.js';
import { randomPrefix, type RedisServer, redisAvailable, startRedis } from './redis-server.js';
import { tempDir } from './tmp.js';

export type BackendKind = 'memory' | 'sqlite' | 'redis' | 'postgres';

/** Backend factories by kind; `cleanup` collects what each made that must go after the test. */
export function sessionBackends(cleanup: Array<() => unknown>): Partial<Record<BackendKind, (clock: ManualClock) => Backend>> {
  const withRedis = redisAvailable() || process.env.CI === 'true';
  const withPostgres = postgresAvailable() || process.env.CI === 'true';
  let redisServer: RedisServer | undefined;
  let pgServer: PostgresServer | undefined;
  beforeAll(async () => {
    if (withRedis) redisServer = await startRedis();
    if (withPostgres) pgServer = await startPostgres();
  });
  afterAll(async () => {
    await redisServer?.stop();
    await pgServer?.destroy();
  });
  const makers: Partial<Record<BackendKind, (clock: ManualClock) => Backend>> = {
    memory: (clock) => memory({ clock, logger: silentLogger }),
    sqlite: (clock) => {
      const tmp = tempDir();
      cleanup.push(tmp.cleanup);
      return sqlite({ path: join(tmp.dir, 'sessions.db'), clock, logger: silentLogger });
    },
  };
  // A generous command timeout: the whole suite shares two cores, and a call past the default 2 s
  // would fail a save (which is right in production, and not what these tests are about).
  if (withRedis) {
    makers.redis = () => redis({ url: (redisServer as RedisServer).url, prefix: randomPrefix(), commandTimeout: '20s', logger: silentLogger });
  }
  if (withPostgres) {
    makers.postgres = () => postgres({ url: (pgServer as PostgresServer).url, schema: randomName('es'), poolSize: 4, logger: silentLogger });
  }
  return makers;
}
