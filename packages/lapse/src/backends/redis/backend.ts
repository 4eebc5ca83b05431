import type { Cluster, Redis } from 'ioredis';
import type { Backend, BackendStats, InsertPolicy, JobLease, UserCount } from '../../core/backend.js';
import { type Duration, parseDuration, parsePositiveDuration } from '../../core/duration.js';
import { LapseError } from '../../core/errors.js';
import type { Logger } from '../../util/logger.js';
import type { Ended, LockState, SessionRecord } from '../../core/session.js';
import { cacheEntries, GenerationalMap } from '../../util/generational-map.js';
import { decodeEnded, decodeRecord, decodeRecords, encodeRecord } from './codec.js';
import { checkReply } from './codes.js';
import { Shards } from './cluster.js';
import { RedisConnection } from './connection.js';
import { EndedChannel } from './ended-channel.js';
import type { RedisKeys } from './keys.js';
import { clusterLayout, type KeyLayout, singleLayout } from './layout.js';
import { RedisJobLease } from './lease.js';
import { defineScripts, type Scripts } from './scripts.js';
import { mergeUserPages, UserOrder } from './user-order.js';

export interface RedisBackendOptions {
  /** An ioredis client to use, a `Redis` or a `Cluster` (sharded layout). It stays yours: close() leaves it open. */
  client?: Redis | Cluster;
  /** Connect to this URL instead (default redis://127.0.0.1:6379). */
  url?: string;
  /** Connect to the Redis Cluster behind these seed nodes (`['redis://h1:p1', …]`) and shard over every master. */
  cluster?: readonly string[];
  /**
   * Prefix of every key, default 'lapse:'. On a cluster, each bucket adds its own hash tag
   * after it, so the prefix must have none.
   */
  prefix?: string;
  /** Longest a call may take, connection wait included; default '2s'. */
  commandTimeout?: Duration;
  /**
   * How long after its expiry Redis drops a session key by itself (native expiry),
   * default '1m'. The sweep normally removes it first; see docs/redis.md, "Clocks".
   */
  expiryGrace?: Duration;
  /**
   * How many sessions keep their decoded form (default 10000; 0: none). A read whose stored
   * text is byte-identical to the last one seen for that id reuses it, parsed data included,
   * instead of decoding again. Every read still goes to Redis: this saves CPU, never freshness.
   */
  decodeCache?: number;
  /** Where connection problems are logged (default: Lapse's pino logger on stderr). */
  logger?: Logger;
  /**
   * On a cluster: after each write, wait until this many replicas have it (Redis WAIT), at
   * most `timeout` (default '100ms'); a write not copied in time fails as unavailable.
   * See docs/redis.md, "What a failover can lose".
   */
  durability?: { replicas: number; timeout?: Duration };
}

interface Decoded {
  text: string;
  rec: SessionRecord;
}

const CLEAR_BATCH = 500;

/**
 * The Redis backend: one JSON string per session with a native expiry, sorted-set indexes for
 * expiry, LRU, users, ids and leases, and one Lua script per multi-key operation.
 * @example
 * const store = createStore({ backend: redis({ url: 'redis://127.0.0.1:6379', prefix: 'myapp:' }) });
 */
export function redis(options: RedisBackendOptions = {}): RedisBackend {
  return new RedisBackend(options);
}

export class RedisBackend implements Backend {
  readonly name = 'redis';
  /** The keys of the single-instance layout; on a cluster, the keys outside every bucket. */
  readonly keys: RedisKeys;
  /** Where each session's and user's keys live (one bucket on a single instance). */
  readonly layout: KeyLayout;
  private readonly conn: RedisConnection;
  private readonly scripts: Scripts;
  private readonly graceMs: number;
  /** The cluster's fan-out over buckets; undefined on a single instance. */
  private readonly shards: Shards | undefined;
  private readonly listeners = new Set<(id: string) => void>();
  private subscriber: Redis | Cluster | undefined;
  private lease: RedisJobLease | undefined;
  private closed = false;
  private readonly decoded: GenerationalMap<string, Decoded> | undefined;
  private readonly ended: EndedChannel;
  private readonly userOrder: UserOrder;

  constructor(options: RedisBackendOptions = {}) {
    const given = [options.client, options.url, options.cluster].filter((o) => o !== undefined).length;
    if (given > 1) throw new LapseError('LAPSE_INVALID_OPTION', 'redis(): pass either client or url or cluster, not two of them');
    const prefix = options.prefix ?? 'lapse:';
    if (typeof prefix !== 'string') throw new LapseError('LAPSE_INVALID_OPTION', 'redis(): prefix must be a string');
    this.graceMs = parseDuration(options.expiryGrace ?? '1m', 'expiryGrace');
    this.conn = new RedisConnection({
      client: options.client,
      url: options.url,
      cluster: options.cluster,
      commandTimeoutMs: parsePositiveDuration(options.commandTimeout ?? '2s', 'commandTimeout'),
      logger: options.logger,
    });
    this.scripts = defineScripts(this.conn.client);
    if (this.conn.clustered) {
      if (/[{}]/.test(prefix)) {
        throw new LapseError('LAPSE_INVALID_OPTION', 'redis(): on a cluster the prefix must have no hash tag ({…}); buckets add their own');
      }
      this.layout = clusterLayout(prefix);
      this.shards = new Shards(this, this.conn, this.layout, options.durability);
    } else {
      this.layout = singleLayout(prefix);
    }
    this.keys = this.layout.shared;
    this.ended = new EndedChannel(this.conn, prefix);
    this.userOrder = new UserOrder(this.conn, this.scripts);
    const decodeCache = cacheEntries(options.decodeCache, 10_000, 'redis(): decodeCache');
    if (decodeCache > 0) this.decoded = new GenerationalMap(decodeCache);
  }

  /** The ioredis client in use (yours, or the one made from `url` or `cluster`). */
  get client(): Redis | Cluster {
    return this.conn.client;
  }

  /** A fresh session id; on a cluster it lands in the bucket of `userId` (or of `near`, for rotate). */
  newId(userId?: string | null, near?: string): string {
    return this.layout.newId(userId, near);
  }

  async insert(
    rec: SessionRecord,
    now: number,
    policy: InsertPolicy,
    opts: { replace?: boolean; fence?: number } = {},
  ): Promise<{ record: SessionRecord; ended: Ended[] }> {
    const k = this.layout.forId(rec.id);
    // On a cluster the global cap is enforced across buckets after the write (Shards.cap).
    const maxSessions = this.shards ? undefined : policy.maxSessions;
    if (this.shards && rec.userId !== null) await this.shards.noteUserBucket(rec.userId, rec.id);
    const reply = await this.conn.run('insert', () =>
      this.scripts.insert(
        ...k.indexes, k.session(rec.id),
        k.prefix, now, this.graceMs, opts.replace ? '1' : '0', opt(opts.fence),
        opt(maxSessions), opt(policy.maxSessionsPerUser), rec.id, encodeRecord(rec),
      ),
    );
    const r = checkReply(reply, { id: rec.id });
    const ended = decodeEnded(r[2]);
    if (this.shards) {
      await this.shards.replicated(k);
      if (policy.maxSessions !== undefined) ended.push(...(await this.shards.cap(policy.maxSessions, now, rec.id)));
    }
    return { record: decodeRecord(rec.id, r[1] as string), ended };
  }

  get(id: string, now: number): Promise<SessionRecord | null> {
    const key = this.layout.forId(id).session(id);
    return this.conn.run(
      'get',
      () => this.conn.client.get(key),
      (text) => {
        if (text === null) return null;
        const rec = this.decode(id, text);
        // An expired session may linger until the sweep or Redis's own expiry: never return it.
        return rec.expiresAt > now ? rec : null;
      },
    );
  }

  /** The record behind stored text, reusing the last decoding of this id when the text is the same. */
  private decode(id: string, text: string): SessionRecord {
    const memo = this.decoded;
    if (!memo) return decodeRecord(id, text);
    const last = memo.get(id);
    if (last !== undefined && last.text === text) return last.rec;
    const rec = decodeRecord(id, text);
    memo.set(id, { text, rec });
    return rec;
  }

  async touch(id: string, at: number, accesses: number, now: number): Promise<SessionRecord | null> {
    const k = this.layout.forId(id);
    const reply = (await this.conn.run('touch', () =>
      this.scripts.touch(...k.indexes, k.session(id), k.prefix, now, this.graceMs, id, at, accesses),
    )) as unknown[];
    return Number(reply[0]) === 0 ? decodeRecord(id, reply[1] as string) : null;
  }

  async update(
    id: string,
    data: string,
    now: number,
    opts: { expectedVersion?: number; fence?: number },
  ): Promise<SessionRecord> {
    const k = this.layout.forId(id);
    const reply = await this.conn.run('update', () =>
      this.scripts.update(k.session(id), k.prefix, now, data, opt(opts.expectedVersion), opt(opts.fence)),
    );
    await this.shards?.replicated(k);
    const r = checkReply(reply, { id, expectedVersion: opts.expectedVersion });
    return decodeRecord(id, r[1] as string);
  }

  async remove(id: string, now: number, opts: { fence?: number; force?: boolean }): Promise<SessionRecord | null> {
    const k = this.layout.forId(id);
    const reply = await this.conn.run('remove', () =>
      this.scripts.remove(...k.indexes, k.session(id), k.prefix, now, id, opt(opts.fence), opts.force ? '1' : '0'),
    );
    const r = checkReply(reply, { id });
    await this.shards?.replicated(k);
    return r.length > 1 ? decodeRecord(id, r[1] as string) : null;
  }

  async rotate(
    id: string,
    next: { id: string; secretHash: string },
    now: number,
    opts: { fence?: number },
  ): Promise<SessionRecord> {
    const k = this.layout.forId(id);
    const reply = await this.conn.run('rotate', () =>
      this.scripts.rotate(
        ...k.indexes, k.session(id), k.session(next.id),
        k.prefix, now, this.graceMs, id, next.id, next.secretHash, opt(opts.fence),
      ),
    );
    const r = checkReply(reply, { id, newId: next.id });
    await this.shards?.replicated(k);
    return decodeRecord(next.id, r[1] as string);
  }

  async removeUser(userId: string, now: number, exceptId?: string): Promise<Ended[]> {
    if (this.shards) return this.shards.removeUser(userId, now, exceptId);
    return this.removeUserIn(this.keys, userId, now, exceptId);
  }

  /** removeUser within one bucket (the cluster fans out over the user's buckets). */
  async removeUserIn(k: RedisKeys, userId: string, now: number, exceptId?: string): Promise<Ended[]> {
    const reply = (await this.conn.run('removeUser', () =>
      this.scripts.removeuser(
        ...k.indexes, k.user(userId),
        k.prefix, now, userId, exceptId ?? '', exceptId === undefined ? '0' : '1',
      ),
    )) as unknown[];
    return decodeEnded(reply[1]);
  }

  async listUser(userId: string, now: number): Promise<SessionRecord[]> {
    if (this.shards) return this.shards.listUser(userId, now);
    return this.listUserIn(this.keys, userId, now);
  }

  /** listUser within one bucket. */
  async listUserIn(k: RedisKeys, userId: string, now: number): Promise<SessionRecord[]> {
    const reply = (await this.conn.run('listUser', () => this.scripts.listuser(k.user(userId), k.prefix, now))) as unknown[];
    return decodeRecords(reply[1]);
  }

  async lock(id: string, owner: string, ttlMs: number, now: number): Promise<LockState> {
    const k = this.layout.forId(id);
    // Fencing numbers grow across every session: on a cluster they come from one counter.
    const fence = this.shards ? await this.shards.nextFence() : '';
    const reply = await this.conn.run('lock', () =>
      this.scripts.lock(k.session(id), k.locks, k.fence, k.prefix, now, id, owner, ttlMs, fence),
    );
    return lockOf(checkReply(reply, { id }));
  }

  async extendLock(id: string, fence: number, ttlMs: number, now: number): Promise<LockState> {
    const k = this.layout.forId(id);
    const reply = await this.conn.run('extendLock', () =>
      this.scripts.extendlock(k.session(id), k.locks, k.prefix, now, id, fence, ttlMs),
    );
    return lockOf(checkReply(reply, { id, fence }));
  }

  async unlock(id: string, fence: number, now: number): Promise<boolean> {
    const k = this.layout.forId(id);
    const reply = await this.conn.run('unlock', () =>
      // One channel for every bucket (what subscribe() listens on): on a cluster, PUBLISH reaches every node.
      this.scripts.unlock(k.session(id), k.locks, k.prefix, now, id, fence, this.keys.unlockChannel),
    );
    return Number(reply) === 1;
  }

  async sweep(now: number, limit: number): Promise<Ended[]> {
    if (this.shards) return this.shards.sweep(now, limit);
    return this.sweepIn(this.keys, now, limit);
  }

  /** sweep within one bucket. */
  async sweepIn(k: RedisKeys, now: number, limit: number): Promise<Ended[]> {
    const reply = (await this.conn.run('sweep', () => this.scripts.sweep(...k.indexes, k.prefix, now, limit))) as unknown[];
    return decodeEnded(reply[1]);
  }

  async count(now: number): Promise<number> {
    if (this.shards) return this.shards.count(now);
    return this.countIn(this.keys, now);
  }

  /** count within one bucket. */
  countIn(k: RedisKeys, now: number): Promise<number> {
    return this.conn.run('count', () => this.conn.client.zcount(k.exp, `(${now}`, '+inf'));
  }

  async stats(now: number): Promise<BackendStats> {
    if (this.shards) return this.shards.stats(now);
    return this.statsIn(this.keys, now);
  }

  /** stats within one bucket. */
  async statsIn(k: RedisKeys, now: number): Promise<BackendStats> {
    const r = (await this.conn.run('stats', () => this.scripts.stats(k.ids, k.users, k.locks, k.prefix, now))) as number[];
    return { sessions: Number(r[0]), users: Number(r[1]), locked: Number(r[2]) };
  }

  async scan(afterId: string | null, limit: number, now: number): Promise<SessionRecord[]> {
    if (this.shards) return this.shards.scan(afterId, limit, now);
    return this.scanIn(this.keys, afterId, limit, now);
  }

  /** scan within one bucket. */
  async scanIn(k: RedisKeys, afterId: string | null, limit: number, now: number): Promise<SessionRecord[]> {
    const reply = (await this.conn.run('scan', () =>
      this.scripts.scan(k.ids, k.prefix, now, afterId ?? '', limit),
    )) as unknown[];
    return decodeRecords(reply[1]);
  }

  /** From the ordered user index of each bucket (user-order.ts); on a cluster, the buckets' pages merged. */
  async scanUsers(prefix: string, afterUserId: string | null, limit: number, _now: number): Promise<UserCount[]> {
    if (!(limit > 0)) return [];
    if (!this.shards) return this.userOrder.scanIn(this.keys, prefix, afterUserId, limit);
    const pages = await Promise.all(this.layout.buckets.map((k) => this.userOrder.scanIn(k, prefix, afterUserId, limit)));
    return mergeUserPages(pages, limit);
  }

  /** Deletes in batches of CLEAR_BATCH so that Redis is never blocked for long. */
  async clear(): Promise<void> {
    for (const k of this.layout.buckets) await this.clearIn(k);
  }

  private async clearIn(k: RedisKeys): Promise<void> {
    for (;;) {
      const more = await this.conn.run('clear', () => this.scripts.clear(...k.indexes, k.prefix, CLEAR_BATCH));
      if (Number(more) === 0) return;
    }
  }

  /** On a cluster, every master must answer: a master that cannot serve is an outage for its share. */
  async ping(): Promise<void> {
    if (this.shards) return this.shards.ping();
    await this.conn.run('ping', () => this.conn.client.ping());
  }

  /** Listens for released leases of any process, over pub/sub on a second connection made on first use. */
  onUnlock(listener: (id: string) => void): () => void {
    this.listeners.add(listener);
    if (!this.subscriber && !this.closed) this.subscribe();
    return () => {
      this.listeners.delete(listener);
    };
  }

  jobLease(): JobLease {
    this.lease ??= new RedisJobLease(this.conn, this.keys, this.scripts, false);
    return this.lease;
  }

  /** Tells every process on this Redis (pub/sub) which sessions ended. */
  publishEnded(ended: Ended[]): void {
    this.ended.publish(ended);
  }

  /** Hears every process's publishEnded. */
  onEnded(listener: (ended: Ended[]) => void): () => void {
    return this.ended.listen(listener);
  }

  /** Closes the subscribers and, when it made it, the client. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.decoded?.clear();
    const sub = this.subscriber;
    this.subscriber = undefined;
    try {
      this.ended.close();
      sub?.disconnect();
    } finally {
      await this.conn.close();
    }
  }

  private subscribe(): void {
    const channel = this.keys.unlockChannel;
    // Lock waiters have their own timers, so the subscriber may wait for Redis as long as it takes.
    const sub = this.conn.subscriber();
    this.subscriber = sub;
    // The main connection logs outages at warn; this one follows the same outages.
    sub.on('error', (err: Error) => this.conn.log().debug({ backend: 'redis', err: err.message }, 'redis subscriber error'));
    sub.on('message', (ch: string, id: string) => {
      if (ch !== channel) return;
      for (const listener of [...this.listeners]) {
        try {
          listener(id);
        } catch (err) {
          this.conn.log().error({ backend: 'redis', err }, 'onUnlock listener threw');
        }
      }
    });
    sub.subscribe(channel).catch((err: unknown) => {
      if (!this.closed) this.conn.log().warn({ backend: 'redis', err }, 'redis unlock subscription failed');
    });
  }
}

/** An optional number as a script argument: '' stands for none. */
function opt(n: number | undefined): string | number {
  return n === undefined ? '' : n;
}

function lockOf(r: unknown[]): LockState {
  return { owner: String(r[1]), fence: Number(r[2]), expiresAt: Number(r[3]) };
}
