import type { UserCount } from '../../core/backend.js';
import type { RedisConnection } from './connection.js';
import type { RedisKeys } from './keys.js';
import type { Scripts } from './scripts.js';

/** Users read per SSCAN step when the ordered user index is filled from the users set. */
const FILL_STEP = 500;

/**
 * The ordered user index (keys.ts userOrder: a zset of user ids, all scores 0) that answers
 * scanUsers with ZRANGEBYLEX: O(log users + limit). The Lua scripts keep it with the users set;
 * data written before it existed is added once per bucket and process (userorderfill-2.lua,
 * SSCAN steps over the users, never over sessions), then a marker key says it is done.
 */
export class UserOrder {
  private readonly filled = new Map<string, Promise<void>>();

  constructor(
    private readonly conn: RedisConnection,
    private readonly scripts: Scripts,
  ) {}

  /** Users of one bucket whose id starts with `prefix`, after `afterUserId`, in byte order. */
  async scanIn(k: RedisKeys, prefix: string, afterUserId: string | null, limit: number): Promise<UserCount[]> {
    if (!(limit > 0)) return [];
    await this.fill(k);
    // ZRANGEBYLEX compares bytes: so does this choice of the start.
    const from = afterUserId !== null && Buffer.compare(Buffer.from(afterUserId), Buffer.from(prefix)) >= 0 ? `(${afterUserId}` : `[${prefix}`;
    const reply = (await this.conn.run('scanUsers', () => this.scripts.scanusers(k.userOrder, k.prefix, prefix, from, limit))) as [
      number,
      [string, number][],
    ];
    return reply[1].map(([userId, n]) => ({ userId, sessions: Number(n) }));
  }

  private fill(k: RedisKeys): Promise<void> {
    let done = this.filled.get(k.prefix);
    if (!done) {
      done = this.fillOnce(k);
      this.filled.set(k.prefix, done);
      // A failed fill is tried again by the next scan.
      done.catch(() => this.filled.delete(k.prefix));
    }
    return done;
  }

  private async fillOnce(k: RedisKeys): Promise<void> {
    const marker = `${k.userOrder}:filled`;
    const client = this.conn.client;
    if ((await this.conn.run('scanUsers', () => client.exists(marker))) === 1) return;
    let cursor = '0';
    do {
      const at = cursor;
      cursor = String(await this.conn.run('scanUsers', () => this.scripts.userorderfill(k.users, k.userOrder, k.prefix, at, FILL_STEP)));
    } while (cursor !== '0');
    await this.conn.run('scanUsers', () => client.set(marker, '1'));
  }
}

/** Merges the buckets' pages (each in byte order, each at most `limit`): a user in several buckets counts once, with the sum. */
export function mergeUserPages(pages: UserCount[][], limit: number): UserCount[] {
  const byUser = new Map<string, number>();
  for (const page of pages) for (const u of page) byUser.set(u.userId, (byUser.get(u.userId) ?? 0) + u.sessions);
  return [...byUser]
    .map(([userId, sessions]) => ({ userId, sessions }))
    .sort((a, b) => Buffer.compare(Buffer.from(a.userId), Buffer.from(b.userId)))
    .slice(0, limit);
}
