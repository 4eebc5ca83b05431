import type { Writable } from 'node:stream';
import type { ClusterOptions } from 'ioredis';
import type * as IORedis from 'ioredis';
import { requirePeer } from '../../util/peer.js';

const { Cluster, Redis } = requirePeer<typeof IORedis>('ioredis', 'lapse/redis');
type Redis = IORedis.Redis;
type Cluster = IORedis.Cluster;
import { errors, LapseError } from '../../core/errors.js';
import { defaultLogger, type Logger } from '../../util/logger.js';

export interface ConnectionOptions {
  /** An ioredis client to use; it stays the caller's (not closed by Lapse). */
  client?: Redis | Cluster;
  /** Used when no client is given; default redis://127.0.0.1:6379. */
  url?: string;
  /** Seed nodes of a Redis Cluster (`redis://host:port`), used instead of url. */
  cluster?: readonly string[];
  /** Bound on every call, connection wait included. */
  commandTimeoutMs: number;
  logger?: Logger;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
}

/**
 * One ioredis connection with bounded calls: a call waits at most `commandTimeoutMs` for
 * the connection and for its reply, then fails; it is never queued to run after it failed.
 * The connection keeps reconnecting, so calls succeed again once Redis is back.
 */
export class RedisConnection {
  readonly client: Redis | Cluster;
  /** Whether the client is a Redis Cluster client (the sharded layout). */
  readonly clustered: boolean;
  readonly owned: boolean;
  readonly timeoutMs: number;
  private readonly ownTimeout: boolean;
  private waiters = new Set<Waiter>();
  private readonly failures = new Map<string, (err: unknown) => never>();
  /** The sockets corked for the rest of this tick, if any (see coalesceWrites()). */
  private corked: Writable[] = [];
  private closed = false;
  private down = false;
  private logger: Logger | undefined;

  constructor(options: ConnectionOptions) {
    this.timeoutMs = options.commandTimeoutMs;
    this.logger = options.logger;
    this.owned = !options.client;
    this.client = options.client ?? makeClient(options, this.timeoutMs);
    this.clustered = this.client instanceof Cluster;
    // ioredis enforces the timeout itself when it was configured with one; on a cluster,
    // our own bound also covers redirections and retries during a failover.
    this.ownTimeout = this.clustered || typeof (this.client as Redis).options.commandTimeout !== 'number';
    this.client.on('ready', this.onReady);
    if (this.owned) this.client.on('error', this.onError);
  }

  /**
   * Runs `fn` once connected and returns its reply, passed through `map` when given (one
   * promise for both). Failures are plain Errors naming the call: the store turns them into
   * LAPSE_BACKEND_UNAVAILABLE (and counts them), so they are not wrapped here.
   */
  run<T, R = T>(what: string, fn: () => Promise<T>, map?: (value: T) => R): Promise<R> {
    if (this.closed) return Promise.reject(errors.closed('redis backend'));
    if (this.client.status === 'ready') return this.call(what, fn, map);
    return this.ready().then(() => this.call(what, fn, map), this.failure(what));
  }

  private call<T, R>(what: string, fn: () => Promise<T>, map: ((value: T) => R) | undefined): Promise<R> {
    if (this.owned) this.coalesceWrites();
    let p: Promise<T>;
    try {
      p = this.ownTimeout ? withTimeout(fn(), this.timeoutMs) : fn();
    } catch (err) {
      return Promise.reject(err).catch(this.failure(what));
    }
    // Every backend call's path: one promise, with a shared rejection handler.
    return map ? p.then(map, this.failure(what)) : (p.catch(this.failure(what)) as unknown as Promise<R>);
  }

  /**
   * Write coalescing on our own client: the first call of a tick corks the socket and the
   * end of the tick uncorks it, so every command sent in that tick (say, the 50 callers a
   * batch of replies just woke up) leaves in one writev system call. ioredis otherwise writes
   * each command on its own (one syscall each: half of a GET's CPU at 50 concurrent callers
   * here), and its auto-pipelining costs more CPU than it saves (a Pipeline and its promises
   * per batch, a tick per command). A caller alone pays one process.nextTick per call.
   */
  private coalesceWrites(): void {
    if (this.corked.length > 0) return;
    // On a cluster, every master's socket: the commands of one tick may go to any of them.
    const nodes = this.clustered ? (this.client as Cluster).nodes('master') : [this.client as Redis];
    for (const node of nodes) {
      const stream = (node as unknown as { stream?: Writable }).stream;
      if (!stream || typeof stream.cork !== 'function' || stream.destroyed) continue;
      stream.cork();
      this.corked.push(stream);
    }
    if (this.corked.length > 0) process.nextTick(this.uncork);
  }

  private readonly uncork = (): void => {
    const streams = this.corked;
    this.corked = [];
    for (const stream of streams) stream.uncork();
  };

  /** The rejection handler of one kind of call, made once per name. */
  private failure(what: string): (err: unknown) => never {
    let f = this.failures.get(what);
    if (!f) {
      f = (err: unknown): never => {
        if (err instanceof LapseError) throw err;
        throw new Error(`redis ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      };
      this.failures.set(what, f);
    }
    return f;
  }

  /** Logs through the given logger, or a default one made on first use. */
  log(): Logger {
    this.logger ??= defaultLogger();
    return this.logger;
  }

  /**
   * A connection for SUBSCRIBE that waits for Redis as long as it takes (nothing awaits it but
   * notices; ioredis re-subscribes after a reconnect), for a single node or a cluster alike.
   */
  subscriber(): Redis | Cluster {
    const patient = { enableOfflineQueue: true, commandTimeout: undefined, maxRetriesPerRequest: null };
    const client = this.client;
    return client instanceof Redis
      ? client.duplicate(patient)
      : client.duplicate(undefined, { enableOfflineQueue: true, redisOptions: { ...client.options.redisOptions, ...patient } });
  }

  /** Closes an owned client (a caller's client stays open) and fails pending waits. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(errors.closed('redis backend'));
    }
    this.waiters.clear();
    this.client.off('ready', this.onReady);
    if (!this.owned) return;
    try {
      if (this.client.status === 'ready') await withTimeout(this.client.quit(), this.timeoutMs);
    } catch {
      // quit could not finish in time: disconnect below drops the socket anyway.
    } finally {
      this.client.disconnect();
      this.client.off('error', this.onError);
    }
  }

  private ready(): Promise<void> {
    const status = this.client.status;
    // A caller's client that was quit never comes back by itself.
    if (status === 'end' && !this.owned) return Promise.reject(new Error('redis client has been closed'));
    if (status === 'wait') this.client.connect().catch(() => {}); // lazyConnect client: errors reach the waiter as a timeout
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new Error(`not connected to redis within ${this.timeoutMs} ms (status ${this.client.status})`));
        }, this.timeoutMs),
      };
      waiter.timer.unref();
      this.waiters.add(waiter);
    });
  }

  private onReady = (): void => {
    if (this.down) this.log().info({ backend: 'redis' }, 'redis connection is back');
    this.down = false;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve();
    }
    this.waiters.clear();
  };

  private onError = (err: Error): void => {
    // One line per outage, not one per reconnect attempt.
    if (this.down || this.closed) return;
    this.down = true;
    this.log().warn({ backend: 'redis', err: err.message }, 'redis connection failed; calls fail until it is back');
  };
}

function makeClient(options: ConnectionOptions, timeoutMs: number): Redis | Cluster {
  if (options.cluster === undefined) return new Redis(options.url ?? 'redis://127.0.0.1:6379', clientOptions(timeoutMs));
  return new Cluster(clusterNodes(options.cluster), clusterOptions(timeoutMs, options.cluster));
}

/** `['redis://h1:p1', …]` as ioredis seed nodes; a bad entry is LAPSE_INVALID_OPTION. */
export function clusterNodes(urls: readonly string[]): Array<{ host: string; port: number }> {
  if (!Array.isArray(urls) || urls.length === 0) {
    throw new LapseError('LAPSE_INVALID_OPTION', "redis(): cluster must list at least one 'redis://host:port'");
  }
  return urls.map((u) => {
    let url: URL;
    try {
      url = new URL(String(u));
    } catch {
      throw new LapseError('LAPSE_INVALID_OPTION', `redis(): cluster node ${JSON.stringify(u)} is not a redis:// URL`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new LapseError('LAPSE_INVALID_OPTION', `redis(): cluster node ${JSON.stringify(u)} is not a redis:// URL`);
    }
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379) };
  });
}

/**
 * Options for Cluster clients Lapse creates: each node connection as clientOptions; no
 * offline queue (fail fast while the cluster is down), reads on masters (a replica may lag
 * behind a write just acknowledged), MOVED followed at once, and a slot-map refresh that
 * retries every 100 ms during a failover, within the caller's bound (commandTimeout).
 */
export function clusterOptions(commandTimeoutMs: number, urls: readonly string[]): ClusterOptions {
  const first = new URL(String(urls[0]));
  const auth = {
    ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
    ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
    ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  return {
    redisOptions: { ...clientOptions(commandTimeoutMs), ...auth },
    enableOfflineQueue: false,
    scaleReads: 'master',
    maxRedirections: 16,
    retryDelayOnMoved: 0,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: Math.max(commandTimeoutMs, 1000),
    clusterRetryStrategy: (attempt: number) => Math.min(100 * attempt, 500),
  };
}

/**
 * Options for clients Lapse creates: bounded command time, no offline queue (a call
 * that failed is never replayed later), no resend of unanswered commands after a
 * reconnect, and endless reconnection at most every 500 ms. No auto-pipelining:
 * RedisConnection batches writes itself (see coalesceWrites).
 */
export function clientOptions(commandTimeoutMs: number) {
  return {
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(commandTimeoutMs, 1000),
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt: number) => Math.min(50 * attempt, 500),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis did not answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
