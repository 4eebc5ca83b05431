/**
 * The Redis key layout of one store (docs/redis.md has the full table). Every key starts
 * with the prefix; a session's key carries its id as hash tag, a user's index the user id.
 */
export interface RedisKeys {
  readonly prefix: string;
  /** Expiry index: zset, score expiresAt, member "<id>\0<absoluteExpiresAt>[\0<userId>]". */
  readonly exp: string;
  /** LRU index: zset, score = access sequence number. */
  readonly lru: string;
  /** Id index: zset, all scores 0, for id-ordered scans. */
  readonly ids: string;
  /** Set of user ids that have stored sessions. */
  readonly users: string;
  /** The same user ids in a zset, all scores 0, for prefix scans in id order (kept with `users`). */
  readonly userOrder: string;
  /** Lease index: zset, score = lease expiresAt. */
  readonly locks: string;
  /** Counter of the access sequence (LRU order). */
  readonly seq: string;
  /** Counter of fencing numbers: it only grows. */
  readonly fence: string;
  /** Pub/sub channel that announces released leases. */
  readonly unlockChannel: string;
  /** The six index keys every index-changing script takes first, in its KEYS order. */
  readonly indexes: readonly [string, string, string, string, string, string];
  session(id: string): string;
  user(userId: string): string;
  job(key: string): string;
}

/** Keys under `prefix`, e.g. 'lapse:'. */
export function redisKeys(prefix: string): RedisKeys {
  const k = (name: string) => `${prefix}${name}`;
  const exp = k('exp');
  const lru = k('lru');
  const ids = k('ids');
  const users = k('users');
  const locks = k('locks');
  const seq = k('seq');
  return {
    prefix,
    exp,
    lru,
    ids,
    users,
    // Must match UORDER in _lib.lua.
    userOrder: k('userorder'),
    locks,
    seq,
    fence: k('fence'),
    unlockChannel: k('unlocked'),
    indexes: [exp, lru, ids, users, locks, seq],
    // Must match skey/ukey in _lib.lua.
    session: (id) => `${prefix}s:{${id}}`,
    user: (userId) => `${prefix}u:{${userId}}`,
    job: (key) => `${prefix}job:${key}`,
  };
}
