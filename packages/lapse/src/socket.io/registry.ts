import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Cluster, Redis } from 'ioredis';
import { RedisConnection } from '../backends/redis/connection.js';
import { type Clock, type TimerClock, timerClock } from '../core/clock.js';
import { type Duration, parsePositiveDuration } from '../core/duration.js';
import { backendError, errors, LapseError } from '../core/errors.js';
import { defaultLogger, type Logger } from '../util/logger.js';
import type { ClusterStats, PresenceRegistry, PresenceSource } from './presence.js';
import { APPLY, COUNT, HEARTBEAT, NODES, RESULT, STATS } from './registry-scripts.js';

export interface RedisRegistryOptions {
  /** An ioredis client, single node or `Cluster` (not closed by the registry); or give `url` or `cluster`. */
  client?: Redis | Cluster;
  /** redis:// URL; the registry then owns its client and quits it on close. */
  url?: string;
  /** Seed nodes of a Redis Cluster (`redis://host:port`); the registry then owns a Cluster client. */
  cluster?: readonly string[];
  /** Key prefix shared by every node of one cluster; default 'lapse:'. */
  prefix?: string;
  /** Unique per process; default `<hostname>-<pid>-<random>`. */
  nodeId?: string;
  /** A node whose lease is not renewed for this long is dead and its connections leave presence; default '10s'. */
  leaseTtl?: Duration;
  /** Longest a call may take, connection wait included (as the store's Redis backend); default '2s'. */
  commandTimeout?: Duration;
  clock?: Clock;
  logger?: Logger;
}

/** Changes sent per script call: large enough for a reconnect storm, small enough not to block Redis. */
const BATCH_OPS = 500;
const RETRY_MS = 1000;

/**
 * Cluster-wide presence in Redis, without a fetchSockets fan-out. Each node holds a lease
 * key renewed by a heartbeat and keeps its connections in keys scoped to the node; the
 * cluster counters are updated incrementally, in order, in batches. When a node dies, its
 * lease lapses, and the next read or heartbeat of any node subtracts its part atomically.
 * @example
 * const registry = new RedisRegistry({ url: 'redis://127.0.0.1:6380', prefix: 'game:' });
 * // or on Redis Cluster: new RedisRegistry({ cluster: ['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000'] })
 * const tracker = trackConnections(io, { registry });
 * await registry.stats(); // { totalSessions, uniqueUsers, activeRooms, sessionsPerRoom, nodes }
 */
export class RedisRegistry implements PresenceRegistry {
  readonly nodeId: string;
  readonly leaseTtl: number;
  private readonly conn: RedisConnection;
  private readonly base: string;
  private readonly nodesKey: string;
  private readonly token = randomUUID();
  private readonly clock: TimerClock;
  private readonly logger: Logger;
  private source: PresenceSource | null = null;
  /** Flat triples (op, sid, arg) not yet sent. */
  private queue: string[] = [];
  private draining: Promise<void> | null = null;
  /** The queue starts with a claim (R) that has not been applied yet. */
  private claimPending = false;
  /** A batch failed: what Redis holds for this node is unknown until the retry rebuilds it. */
  private retryTimer: unknown;
  private heartbeatTimer: unknown;
  private closing: Promise<void> | undefined;

  constructor(opts: RedisRegistryOptions) {
    if (typeof opts !== 'object' || opts === null || (!opts.client && !opts.url && !opts.cluster)) {
      throw new LapseError('LAPSE_INVALID_OPTION', 'RedisRegistry needs a client, a url or cluster seed nodes');
    }
    const prefix = opts.prefix ?? 'lapse:';
    if (typeof prefix !== 'string') throw errors.optionMustBe('prefix', 'a string');
    this.nodeId = opts.nodeId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    if (typeof this.nodeId !== 'string' || this.nodeId === '' || /[\s{}]/.test(this.nodeId)) {
      throw errors.optionMustBe('nodeId', 'a non-empty string without spaces or braces');
    }
    this.leaseTtl = parsePositiveDuration(opts.leaseTtl ?? '10s', 'leaseTtl');
    // One hash tag for every key: every key of the registry lives in one slot, so each script
    // (called with the nodes key as KEYS[1], which routes it on a Cluster client) may touch
    // any node's keys atomically, on one redis-server and on Redis Cluster alike.
    this.base = `{${prefix}presence}:`;
    this.nodesKey = `${this.base}nodes`;
    this.clock = timerClock(opts.clock);
    this.logger = opts.logger ?? defaultLogger();
    // The store's connection policy: bounded calls that fail fast while Redis is down, no
    // offline queue, endless reconnection; an owned client is quit on close.
    this.conn = new RedisConnection({
      client: opts.client,
      url: opts.url,
      ...(opts.cluster !== undefined ? { cluster: opts.cluster } : {}),
      commandTimeoutMs: parsePositiveDuration(opts.commandTimeout ?? '2s', 'commandTimeout'),
      logger: this.logger,
    });
  }

  /** Starts mirroring a tracker (trackConnections calls this): registers the node and copies its connections. */
  attach(source: PresenceSource): void {
    this.assertOpen();
    if (this.source) throw new LapseError('LAPSE_INVALID_OPTION', 'this RedisRegistry already mirrors a tracker');
    this.source = source;
    this.rebuild();
    this.scheduleHeartbeat();
  }

  /** Stops mirroring: this node and its connections leave presence. */
  detach(): void {
    if (!this.source) return;
    this.source = null;
    this.stopTimers();
    this.queue = ['X', '', ''];
    this.claimPending = false;
    this.kick();
  }

  connected(sid: string, userId: string | null): void {
    this.push('c', sid, userId ?? '');
  }

  disconnected(sid: string): void {
    this.push('d', sid, '');
  }

  joined(sid: string, room: string): void {
    this.push('j', sid, room);
  }

  left(sid: string, room: string): void {
    this.push('l', sid, room);
  }

  /** Cluster figures from live nodes only (dead nodes are reaped in the same script). */
  async stats(): Promise<ClusterStats> {
    const [total, users, nodes, flat] = (await this.read(STATS, [this.base])) as [number, number, number, string[]];
    const sessionsPerRoom: Record<string, number> = {};
    for (let i = 0; i < flat.length; i += 2) sessionsPerRoom[flat[i] as string] = Number(flat[i + 1]);
    return { totalSessions: total, uniqueUsers: users, activeRooms: flat.length / 2, sessionsPerRoom, nodes };
  }

  /** Live connections of a user across the cluster. */
  async userConnections(userId: string): Promise<number> {
    return Number(await this.read(COUNT, [this.base, 'u', userId]));
  }

  /** Whether a user has a live connection on any live node. */
  async isOnline(userId: string): Promise<boolean> {
    return (await this.userConnections(userId)) > 0;
  }

  /** Live connections in a room across the cluster. */
  async roomConnections(room: string): Promise<number> {
    return Number(await this.read(COUNT, [this.base, 'r', room]));
  }

  /** Ids of the live nodes. */
  async nodes(): Promise<string[]> {
    return (await this.read(NODES, [this.base])) as string[];
  }

  /** Resolves once every change made so far has been sent (or given up on, to be rebuilt). */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /** Leaves presence (when attached), stops the heartbeat, quits an owned client. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- internals ----

  private push(op: string, sid: string, arg: string): void {
    // While a retry is pending, the retry rebuilds everything from the source.
    if (!this.source || this.retryTimer !== undefined) return;
    this.queue.push(op, sid, arg);
    this.kick();
  }

  /** Replaces the queue with a claim followed by the whole local state. */
  private rebuild(): void {
    const source = this.source;
    if (!source) return;
    const q: string[] = ['R', '', ''];
    for (const e of source.entries()) {
      q.push('c', e.sid, e.userId ?? '');
      for (const room of e.rooms) q.push('j', e.sid, room);
    }
    this.queue = q;
    this.claimPending = true;
    this.kick();
  }

  private kick(): void {
    if (this.draining || this.queue.length === 0) return;
    this.draining = this.drain().finally(() => {
      this.draining = null;
      this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, BATCH_OPS * 3);
      const claims = batch[0] === 'R';
      let result: unknown;
      try {
        result = await this.run(APPLY, [this.base, this.nodeId, this.token, String(this.leaseTtl), ...batch]);
      } catch (err) {
        this.logger.warn({ err, node: this.nodeId }, 'presence registry: update failed; rebuilding when redis answers');
        this.queue = [];
        this.scheduleRetry();
        return;
      }
      if (claims) this.claimPending = false;
      if (result === RESULT.NO_LEASE && !this.claimPending && this.source) {
        this.logger.warn({ node: this.nodeId }, 'presence registry: lease lost (node was declared dead); re-registering');
        this.rebuild();
      }
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== undefined || this.closing) return;
    this.retryTimer = this.clock.setTimer(() => {
      this.retryTimer = undefined;
      this.rebuild();
    }, RETRY_MS);
  }

  private scheduleHeartbeat(): void {
    const every = Math.max(10, Math.floor(this.leaseTtl / 3));
    this.heartbeatTimer = this.clock.setTimer(() => {
      this.heartbeatTimer = undefined;
      void this.heartbeat().finally(() => {
        if (this.source && !this.closing) this.scheduleHeartbeat();
      });
    }, every);
  }

  private async heartbeat(): Promise<void> {
    try {
      const [renewed, reaped] = (await this.run(HEARTBEAT, [this.base, this.nodeId, this.token, String(this.leaseTtl)])) as [number, number];
      if (reaped > 0) this.logger.info({ node: this.nodeId, reaped }, 'presence registry: dead nodes removed');
      if (renewed === 0 && this.source && !this.claimPending && this.retryTimer === undefined) {
        this.logger.warn({ node: this.nodeId }, 'presence registry: lease lapsed; re-registering');
        this.rebuild();
      }
    } catch (err) {
      this.logger.warn({ err, node: this.nodeId }, 'presence registry: heartbeat failed');
    }
  }

  private async read(script: string, args: string[]): Promise<unknown> {
    this.assertOpen();
    try {
      return await this.run(script, args);
    } catch (err) {
      throw backendError(err, 'presence registry read failed');
    }
  }

  /** EVALSHA, falling back to EVAL once when Redis does not have the script cached. */
  private async run(script: string, args: string[]): Promise<unknown> {
    const sha = shaOf(script);
    const redis = this.conn.client;
    return this.conn.run('presence', async () => {
      try {
        return await redis.evalsha(sha, 1, this.nodesKey, ...args);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err;
        return redis.eval(script, 1, this.nodesKey, ...args);
      }
    });
  }

  private stopTimers(): void {
    if (this.heartbeatTimer !== undefined) this.clock.clearTimer(this.heartbeatTimer);
    if (this.retryTimer !== undefined) this.clock.clearTimer(this.retryTimer);
    this.heartbeatTimer = undefined;
    this.retryTimer = undefined;
  }

  private assertOpen(): void {
    if (this.closing) throw errors.closed('the presence registry');
  }

  private async shutdown(): Promise<void> {
    const errors: unknown[] = [];
    try {
      this.detach();
      await this.flush();
    } catch (err) {
      errors.push(err);
    }
    this.stopTimers();
    await this.conn.close().catch((err: unknown) => errors.push(err));
    if (errors.length > 0) throw backendError(errors[0], 'closing the presence registry failed');
  }
}

const shas = new Map<string, string>();
function shaOf(script: string): string {
  let sha = shas.get(script);
  if (!sha) {
    sha = createHash('sha1').update(script).digest('hex');
    shas.set(script, sha);
  }
  return sha;
}
