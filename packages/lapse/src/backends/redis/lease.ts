import type { Cluster, Redis } from 'ioredis';
import type { JobLease } from '../../core/backend.js';
import { parsePositiveDuration, type Duration } from '../../core/duration.js';
import type { Logger } from '../../util/logger.js';
import { newId } from '../../core/token.js';
import { RedisConnection } from './connection.js';
import { type RedisKeys, redisKeys } from './keys.js';
import { defineScripts, type Scripts } from './scripts.js';

export interface RedisJobLeaseOptions {
  client?: Redis | Cluster;
  url?: string;
  /** Key prefix, default 'lapse:'; lease keys are `<prefix>job:<key>`. */
  prefix?: string;
  commandTimeout?: Duration;
  logger?: Logger;
}

/**
 * A JobLease on Redis: SET NX PX with a random token; renew and release are
 * compare-and-set scripts, so a holder whose lease ran out cannot touch the next one's.
 * Lease time is Redis's own clock (PX), which every node shares.
 */
export class RedisJobLease implements JobLease {
  constructor(
    private readonly conn: RedisConnection,
    private readonly keys: RedisKeys,
    private readonly scripts: Scripts,
    /** Whether close() closes the connection (false when a backend lends its own). */
    private readonly ownsConnection: boolean,
  ) {}

  async acquire(key: string, ttlMs: number): Promise<string | null> {
    const token = newId();
    const ok = await this.conn.run('job lease acquire', () =>
      this.conn.client.set(this.keys.job(key), token, 'PX', pxOf(ttlMs), 'NX'),
    );
    return ok === 'OK' ? token : null;
  }

  async renew(key: string, token: string, ttlMs: number): Promise<boolean> {
    const r = await this.conn.run('job lease renew', () =>
      this.scripts.jobrenew(this.keys.job(key), this.keys.prefix, token, pxOf(ttlMs)),
    );
    return Number(r) === 1;
  }

  async release(key: string, token: string): Promise<void> {
    await this.conn.run('job lease release', () => this.scripts.jobrelease(this.keys.job(key), this.keys.prefix, token));
  }

  async close(): Promise<void> {
    if (this.ownsConnection) await this.conn.close();
  }
}

/**
 * A JobLease on its own Redis connection, for a Scheduler without a Redis session backend.
 * @example
 * const scheduler = new Scheduler({ lease: redisJobLease({ url: 'redis://10.0.0.5:6379' }) });
 */
export function redisJobLease(options: RedisJobLeaseOptions = {}): RedisJobLease {
  const conn = new RedisConnection({
    client: options.client,
    url: options.url,
    commandTimeoutMs: parsePositiveDuration(options.commandTimeout ?? '2s', 'commandTimeout'),
    logger: options.logger,
  });
  return new RedisJobLease(conn, redisKeys(options.prefix ?? 'lapse:'), defineScripts(conn.client), true);
}

function pxOf(ttlMs: number): number {
  return Math.max(1, Math.ceil(ttlMs));
}
