import { newId } from '../../core/token.js';
import { type RedisKeys, redisKeys } from './keys.js';

/**
 * Where a store's keys live. The single-instance layout puts everything under one prefix;
 * the cluster layout splits sessions into BUCKETS buckets, each under its own hash tag, so
 * that every key of a bucket (session strings and the bucket's indexes) shares one slot
 * and the Lua scripts run unchanged, one bucket at a time (docs/redis.md, "Redis Cluster").
 */
export interface KeyLayout {
  /** Every bucket's keys, bucket 0 first (one entry on a single instance). */
  readonly buckets: readonly RedisKeys[];
  /** Keys outside any bucket (job leases, the unlock channel). */
  readonly shared: RedisKeys;
  /** The bucket holding session `id`. */
  forId(id: string): RedisKeys;
  /** The bucket holding user `userId`'s index and their generated sessions. */
  forUser(userId: string): RedisKeys;
  /** A fresh id for a session of `userId` (in the user's bucket) or in the bucket of `near`. */
  newId(userId: string | null | undefined, near?: string): string;
}

/** The single-instance layout: one prefix, exactly the keys Lapse always used. */
export function singleLayout(prefix: string): KeyLayout {
  const keys = redisKeys(prefix);
  return { buckets: [keys], shared: keys, forId: () => keys, forUser: () => keys, newId: () => newId() };
}

/** 64 buckets: one base64url character names one, and 64 spread within 2 % over 3 masters. */
export const BUCKETS = 64;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const GENERATED = /^[A-Za-z0-9_-]{22}$/;
const SLOTS = 16384;

/**
 * The cluster layout. A generated id (22 base64url characters, as newId() makes) names its
 * bucket by its first character, which newId(userId) sets to the user's bucket; any other
 * id (a caller's, via set()) goes by a hash of the whole id.
 */
export function clusterLayout(prefix: string): KeyLayout {
  const tags = bucketTags();
  const buckets = tags.map((tag) => redisKeys(`${prefix}{${tag}}:`));
  const at = (b: number) => buckets[b] as RedisKeys;
  return {
    buckets,
    shared: redisKeys(prefix),
    forId: (id) => at(bucketOfId(id)),
    forUser: (userId) => at(bucketOfUser(userId)),
    newId(userId, near) {
      const id = newId();
      if (near !== undefined) return withBucket(id, bucketOfId(near));
      return userId === undefined || userId === null ? id : withBucket(id, bucketOfUser(userId));
    },
  };
}

/** The bucket of a session id. */
export function bucketOfId(id: string): number {
  if (GENERATED.test(id)) return ALPHABET.indexOf(id[0] as string);
  return fnv1a(id) % BUCKETS;
}

/** The bucket of a user: a hash of the user id. */
export function bucketOfUser(userId: string): number {
  return fnv1a(userId) % BUCKETS;
}

/** `id` with its first character replaced by bucket `b`'s (the other 122 bits stay random). */
function withBucket(id: string, b: number): string {
  return `${ALPHABET[b]}${id.slice(1)}`;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

let tagCache: string[] | undefined;

/**
 * One hash tag per bucket, bucket b's in the b-th 64th of the slot range. Masters own
 * contiguous slot ranges (redis-cli --cluster create splits them evenly), so each master
 * gets the same number of buckets, give or take one. The tags are the first base-36
 * strings that land in each range: the same on every node, found in a few hundred tries.
 */
function bucketTags(): string[] {
  if (tagCache) return tagCache;
  const tags: Array<string | undefined> = new Array(BUCKETS).fill(undefined);
  let missing = BUCKETS;
  for (let n = 0; missing > 0; n++) {
    const tag = n.toString(36);
    const b = Math.floor((keySlot(tag) * BUCKETS) / SLOTS);
    if (tags[b] === undefined) {
      tags[b] = tag;
      missing--;
    }
  }
  tagCache = tags as string[];
  return tagCache;
}

const CRC_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 8;
    for (let j = 0; j < 8; j++) c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1;
    t[i] = c & 0xffff;
  }
  return t;
})();

/** Redis Cluster's slot of a key without braces: CRC16-XMODEM mod 16384 (ASCII keys only). */
export function keySlot(key: string): number {
  let crc = 0;
  for (let i = 0; i < key.length; i++) {
    crc = ((crc << 8) & 0xffff) ^ (CRC_TABLE[((crc >> 8) ^ key.charCodeAt(i)) & 0xff] as number);
  }
  return crc % SLOTS;
}
