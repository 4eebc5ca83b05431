import type { Cluster } from 'ioredis';
import type { BackendStats } from '../../core/backend.js';
import { type Duration, parsePositiveDuration } from '../../core/duration.js';
import { LapseError } from '../../core/errors.js';
import type { Ended, SessionRecord } from '../../core/session.js';
import type { RedisConnection } from './connection.js';
import type { RedisKeys } from './keys.js';
import { bucketOfId, bucketOfUser, type KeyLayout, keySlot } from './layout.js';

/** What the shards need of the Redis backend: its calls on one bucket's keys (no import of it, so no circle). */
export interface ShardCalls {
  get(id: string, now: number): Promise<SessionRecord | null>;
  remove(id: string, now: number, opts: { fence?: number; force?: boolean }): Promise<SessionRecord | null>;
  removeUserIn(k: RedisKeys, userId: string, now: number, exceptId?: string): Promise<Ended[]>;
  listUserIn(k: RedisKeys, userId: string, now: number): Promise<SessionRecord[]>;
  sweepIn(k: RedisKeys, now: number, limit: number): Promise<Ended[]>;
  countIn(k: RedisKeys, now: number): Promise<number>;
  statsIn(k: RedisKeys, now: number): Promise<BackendStats>;
  scanIn(k: RedisKeys, afterId: string | null, limit: number, now: number): Promise<SessionRecord[]>;
}

/** The cluster half of the Redis backend: what must visit several buckets (docs/redis.md, "Redis Cluster"). */
export class Shards {
  private readonly waitReplicas: number;
  private readonly waitMs: number;

  constructor(
    private readonly backend: ShardCalls,
    private readonly conn: RedisConnection,
    private readonly layout: KeyLayout,
    durability: { replicas: number; timeout?: Duration } | undefined,
  ) {
    const replicas = durability?.replicas ?? 0;
    if (!Number.isInteger(replicas) || replicas < 0) {
      throw new LapseError('LAPSE_INVALID_OPTION', 'redis(): durability.replicas must be an integer >= 0');
    }
    this.waitReplicas = replicas;
    this.waitMs = parsePositiveDuration(durability?.timeout ?? '100ms', 'durability.timeout');
  }

  private get cluster(): Cluster {
    return this.conn.client as Cluster;
  }

  /**
   * A caller-chosen id (set()) of a user may land outside the user's bucket: the user's
   * bucket then lists that bucket, so listUser and removeUser visit it too. Written before
   * the session, so the list is never short; a stale entry costs one empty call.
   */
  async noteUserBucket(userId: string, id: string): Promise<void> {
    const b = bucketOfId(id);
    if (b === bucketOfUser(userId)) return;
    const home = this.layout.forUser(userId);
    const key = foreignKey(home, userId);
    // The home bucket also lists the users that have such a note, so clear() finds every note
    // (the user may have no session in the home bucket, and so not be in its users set).
    await this.conn.run('insert', () => this.cluster.multi().sadd(key, b).sadd(notedKey(home), userId).exec());
  }

  private async userBuckets(userId: string): Promise<RedisKeys[]> {
    const home = this.layout.forUser(userId);
    const others = await this.conn.run('listUser', () => this.cluster.smembers(foreignKey(home, userId)));
    return [home, ...others.map((b) => this.layout.buckets[Number(b)]).filter((k): k is RedisKeys => k !== undefined && k !== home)];
  }

  /** The user's sessions, most recently used first; one script when they all live in the user's bucket. */
  async listUser(userId: string, now: number): Promise<SessionRecord[]> {
    const buckets = await this.userBuckets(userId);
    const lists = await Promise.all(buckets.map((k) => this.backend.listUserIn(k, userId, now)));
    if (lists.length === 1) return lists[0] as SessionRecord[];
    return lists.flat().sort((a, b) => b.lastAccessedAt - a.lastAccessedAt);
  }

  async removeUser(userId: string, now: number, exceptId?: string): Promise<Ended[]> {
    const buckets = await this.userBuckets(userId);
    const ended = await Promise.all(buckets.map((k) => this.backend.removeUserIn(k, userId, now, exceptId)));
    if (buckets.length > 1 && exceptId === undefined) {
      const home = buckets[0] as RedisKeys;
      await this.conn.run('removeUser', () => this.cluster.multi().del(foreignKey(home, userId)).srem(notedKey(home), userId).exec());
    }
    return ended.flat();
  }

  /**
   * Sweeps the `limit` soonest-expired sessions of the whole cluster: the due heads of every
   * bucket's expiry index are read first, merged, and each bucket then sweeps its own share
   * of the soonest `limit` (its script takes them soonest first, as the read saw them).
   */
  async sweep(now: number, limit: number): Promise<Ended[]> {
    if (limit <= 0) return [];
    const c = this.cluster;
    const buckets = this.layout.buckets;
    const heads = await this.conn.run('sweep', () =>
      Promise.all(buckets.map((k) => c.zrangebyscore(k.exp, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit))),
    );
    const due: Array<{ bucket: number; id: string; score: number }> = [];
    heads.forEach((h, bucket) => {
      for (let i = 0; i + 1 < h.length; i += 2) {
        const member = h[i] as string;
        due.push({ bucket, id: member.slice(0, member.indexOf('\0')), score: Number(h[i + 1]) });
      }
    });
    due.sort((a, b) => a.score - b.score);
    const chosen = due.slice(0, limit);
    const shares = new Map<number, number>();
    for (const d of chosen) shares.set(d.bucket, (shares.get(d.bucket) ?? 0) + 1);
    const swept = await Promise.all([...shares].map(([b, n]) => this.backend.sweepIn(buckets[b] as RedisKeys, now, n)));
    const order = new Map(chosen.map((d, i) => [d.id, i]));
    const rank = (e: Ended) => order.get(e.id) ?? chosen.length;
    return swept.flat().sort((a, b) => rank(a) - rank(b));
  }

  /** The next fencing number from the one counter outside every bucket (a lock costs one more round trip). */
  nextFence(): Promise<number> {
    return this.conn.run('lock', () => this.cluster.incr(this.layout.shared.fence));
  }

  async count(now: number): Promise<number> {
    const counts = await Promise.all(this.layout.buckets.map((k) => this.backend.countIn(k, now)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Sums of the buckets' counts. sessions and locked are exact sums (each bucket's count is
   * exact, read a moment apart); users counts a user once per bucket holding their
   * sessions, which is once unless set() put a caller-chosen id of theirs elsewhere.
   */
  async stats(now: number): Promise<BackendStats> {
    const all = await Promise.all(this.layout.buckets.map((k) => this.backend.statsIn(k, now)));
    return all.reduce((a, s) => ({ sessions: a.sessions + s.sessions, users: a.users + s.users, locked: a.locked + s.locked }), {
      sessions: 0,
      users: 0,
      locked: 0,
    });
  }

  /** A k-way merge: each bucket's next `limit` live sessions after afterId, the first `limit` of all in id order. */
  async scan(afterId: string | null, limit: number, now: number): Promise<SessionRecord[]> {
    const pages = await Promise.all(this.layout.buckets.map((k) => this.backend.scanIn(k, afterId, limit, now)));
    return pages
      .flat()
      .sort((a, b) => Buffer.compare(Buffer.from(a.id), Buffer.from(b.id)))
      .slice(0, limit);
  }

  /**
   * maxSessions over the whole cluster. No script can see every bucket, so the cap is
   * enforced right after an insert: while the total is over it, the soonest-expired
   * session goes if it has expired, else the least recently used of the buckets' LRU ends
   * (by lastAccessedAt). Concurrent inserts on several nodes may overshoot for a moment
   * or evict one session too many; docs/redis.md says so.
   */
  async cap(max: number, now: number, keep: string): Promise<Ended[]> {
    const ended: Ended[] = [];
    const buckets = this.layout.buckets;
    const c = this.cluster;
    for (let round = 0; round < 16; round++) {
      const sizes = await this.conn.run('insert', () => Promise.all(buckets.map((k) => c.zcard(k.ids))));
      if (sizes.reduce((a, b) => a + b, 0) <= max) break;
      const heads = await this.conn.run('insert', () =>
        Promise.all(buckets.map((k) => c.zrange(k.exp, 0, 0, 'WITHSCORES'))),
      );
      let soonest = -1;
      heads.forEach((h, i) => {
        if (h[1] !== undefined && Number(h[1]) <= now && (soonest < 0 || Number(h[1]) < Number(heads[soonest]?.[1]))) soonest = i;
      });
      if (soonest >= 0) {
        ended.push(...(await this.backend.sweepIn(buckets[soonest] as RedisKeys, now, 1)));
        continue;
      }
      const victim = await this.leastRecent(now, keep);
      if (!victim) break;
      const rec = await this.backend.remove(victim.id, now, { force: true });
      if (rec) ended.push({ id: rec.id, userId: rec.userId, reason: 'evicted' });
    }
    return ended;
  }

  private async leastRecent(now: number, keep: string): Promise<SessionRecord | undefined> {
    const c = this.cluster;
    const heads = await this.conn.run('insert', () => Promise.all(this.layout.buckets.map((k) => c.zrange(k.lru, 0, 1))));
    const ids = heads.flat().filter((id) => id !== keep);
    const recs = await Promise.all(ids.map((id) => this.backend.get(id, now)));
    let best: SessionRecord | undefined;
    for (const r of recs) if (r && (!best || r.lastAccessedAt < best.lastAccessedAt)) best = r;
    return best;
  }

  /**
   * With `durability`, waits until the master of `k`'s bucket has copied its writes to that
   * many replicas (WAIT on the same connection covers every write sent on it before).
   */
  async replicated(k: RedisKeys): Promise<void> {
    if (this.waitReplicas === 0) return;
    const node = this.masterOf(k);
    const acked = await this.conn.run('wait', () => node.call('WAIT', this.waitReplicas, this.waitMs) as Promise<number>);
    if (Number(acked) < this.waitReplicas) {
      throw new Error(`redis wait: the write reached ${acked} of ${this.waitReplicas} replicas within ${this.waitMs} ms`);
    }
  }

  private masterOf(k: RedisKeys) {
    const slot = keySlot(tagOf(k.prefix));
    const owner = this.cluster.slots[slot]?.[0];
    const node = this.cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === owner);
    if (!node) throw new Error(`redis wait: no master known for slot ${slot}`);
    return node;
  }

  /** Every master must answer: each one holds a share of the sessions. */
  async ping(): Promise<void> {
    await this.conn.run('ping', async () => {
      const masters = this.cluster.nodes('master');
      if (masters.length === 0) throw new Error('no master known');
      await Promise.all(masters.map((n) => n.ping()));
    });
  }
}

/** The set, in the user's bucket, of other buckets holding sessions of this user. */
function foreignKey(home: RedisKeys, userId: string): string {
  return `${home.prefix}x:{${userId}}`;
}

/** The set, in a bucket, of the users whose note (foreignKey) lives there; clear-6.lua reads it as P..'xs'. */
function notedKey(home: RedisKeys): string {
  return `${home.prefix}xs`;
}

/** The hash tag inside a bucket prefix `<prefix>{<tag>}:`. */
function tagOf(bucketPrefix: string): string {
  const open = bucketPrefix.lastIndexOf('{');
  return bucketPrefix.slice(open + 1, bucketPrefix.lastIndexOf('}'));
}
