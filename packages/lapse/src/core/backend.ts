import type { Ended, LockState, SessionRecord } from './session.js';

/** A value or a promise of it: the memory backend answers synchronously, the others do not. */
export type Awaitable<T> = T | Promise<T>;

/** Caps a backend enforces atomically when it inserts. */
export interface InsertPolicy {
  maxSessions?: number;
  maxSessionsPerUser?: number;
}

/** Counts a backend keeps without scanning. */
export interface BackendStats {
  /** Stored sessions, including expired ones the sweep has not removed yet. */
  sessions: number;
  /** Distinct users with at least one stored session. */
  users: number;
  /** Sessions with a lease in force. */
  locked: number;
  /** Memory snapshots (only with the snapshot option): failed writes so far, and when one last succeeded (epoch ms). */
  snapshot?: { failures: number; lastSuccessAt: number | null };
}

/** A user and how many sessions the backend stores for it (what scanUsers returns). */
export interface UserCount {
  userId: string;
  sessions: number;
}

/** Whether a backend can serve writes and keep them: `ok: false` with a reason when it cannot. */
export interface BackendHealth {
  ok: boolean;
  reason?: string;
}

/**
 * A lease used by the Scheduler so that a job runs on one node only.
 * `acquire` returns a token when this caller got the key, null when another holds it.
 */
export interface JobLease {
  acquire(key: string, ttlMs: number): Promise<string | null>;
  renew(key: string, token: string, ttlMs: number): Promise<boolean>;
  release(key: string, token: string): Promise<void>;
  close?(): Promise<void> | void;
}

/**
 * The one storage contract every backend implements (memory, SQLite, Redis).
 *
 * Every method is atomic on its own. Policies that must be atomic — LRU and per-user
 * eviction, lease checks, version checks — happen inside the backend. Semantic
 * refusals are thrown as LapseError (`LAPSE_NOT_FOUND`, `LAPSE_LOCKED`,
 * `LAPSE_VERSION_CONFLICT`, `LAPSE_INVALID_INPUT`); anything else a backend throws is
 * reported by the store as `LAPSE_BACKEND_UNAVAILABLE`.
 *
 * A record whose `expiresAt <= now` is never returned, whether or not a sweep removed it.
 * No method may scan every session: each path uses an index.
 */
export interface Backend {
  readonly name: string;

  /**
   * Inserts `rec`. When the caps in `policy` are reached, first the user's least
   * recently used session goes (per-user cap), then an expired session, else the least
   * recently used one (global cap). Returns what it removed to make room.
   * With `replace`, a live session with the same id keeps its createdAt, absolute cap,
   * accessCount and lease, takes everything else from `rec`, and its version grows by one
   * (`fence` must match a lease in force). Without `replace`, a live one with that id is
   * LAPSE_INVALID_INPUT.
   */
  insert(
    rec: SessionRecord,
    now: number,
    policy: InsertPolicy,
    opts?: { replace?: boolean; fence?: number },
  ): Awaitable<{ record: SessionRecord; ended: Ended[] }>;

  /**
   * Optional (memory): `insert` with `replace` for a live session, given what `store.set`
   * writes instead of a record: no secret hash, no request metadata, `lastAccessedAt = now`.
   * It writes into the stored record and returns it, pushing what it removed to make room onto
   * `ended`; it returns undefined, writing nothing, when no live session has this id (the
   * caller then calls `insert`). LAPSE_LOCKED as insert. Meant for a backend that answers
   * synchronously, where building the record is a visible part of a set's cost.
   */
  upsertLive?(
    id: string,
    data: string,
    userId: string | null,
    idleTimeout: number,
    now: number,
    policy: InsertPolicy,
    fence: number | undefined,
    ended: Ended[],
  ): Awaitable<SessionRecord | undefined>;

  /** The live record, or null. Counts no access. */
  get(id: string, now: number): Awaitable<SessionRecord | null>;

  /**
   * Records `accesses` accesses at time `at`: lastAccessedAt = max(old, at), expiresAt is
   * recomputed (never past the absolute cap), accessCount grows. Null when not live.
   */
  touch(id: string, at: number, accesses: number, now: number): Awaitable<SessionRecord | null>;

  /** Replaces data, version + 1. NOT_FOUND / LOCKED (lease in force, fence differs) / VERSION_CONFLICT. */
  update(
    id: string,
    data: string,
    now: number,
    opts: { expectedVersion?: number; fence?: number },
  ): Awaitable<SessionRecord>;

  /**
   * Removes a live session and returns it, null when there was none. LAPSE_LOCKED when a
   * lease is in force and `fence` differs, unless `force`.
   */
  remove(id: string, now: number, opts: { fence?: number; force?: boolean }): Awaitable<SessionRecord | null>;

  /**
   * Moves a live session to a new id and secret hash in one step: same data, user,
   * createdAt, absolute cap and version; lastAccessedAt = now; no lease. The old id is
   * gone at once. NOT_FOUND / LOCKED as for remove.
   */
  rotate(
    id: string,
    next: { id: string; secretHash: string },
    now: number,
    opts: { fence?: number },
  ): Awaitable<SessionRecord>;

  /** Removes every session of a user (leases do not protect them), except `exceptId`. */
  removeUser(userId: string, now: number, exceptId?: string): Awaitable<Ended[]>;

  /** The user's live sessions, most recently used first. */
  listUser(userId: string, now: number): Awaitable<SessionRecord[]>;

  /** Grants a lease with a new, larger fencing number. NOT_FOUND / LOCKED. */
  lock(id: string, owner: string, ttlMs: number, now: number): Awaitable<LockState>;

  /** Extends the lease `fence` to now + ttl. LOCKED when that lease is no longer in force. */
  extendLock(id: string, fence: number, ttlMs: number, now: number): Awaitable<LockState>;

  /** Ends the lease `fence`; false when it was not the lease in force. */
  unlock(id: string, fence: number, now: number): Awaitable<boolean>;

  /** Removes up to `limit` expired sessions, soonest-expired first, using the expiry index. */
  sweep(now: number, limit: number): Awaitable<Ended[]>;

  /** Live sessions (expired ones not counted). */
  count(now: number): Awaitable<number>;

  stats(now: number): Awaitable<BackendStats>;

  /** Live sessions with id > afterId, in id order, at most `limit`. */
  scan(afterId: string | null, limit: number, now: number): Awaitable<SessionRecord[]>;

  /** Removes every session. */
  clear(): Awaitable<void>;

  /** Cheap round trip that throws when the backend cannot serve. */
  ping(): Awaitable<void>;

  /** Optional: tells `listener` when a lease on `id` was released, by any process. */
  onUnlock?(listener: (id: string) => void): () => void;

  /**
   * Optional: tells every process on this backend (this one included) which sessions ended,
   * so that each can cut the live sockets of those sessions. Fire and forget: a failure is
   * the backend's to log; delivery is at most once.
   */
  publishEnded?(ended: Ended[]): void;

  /** Optional: hears what publishEnded sent, from any process. */
  onEnded?(listener: (ended: Ended[]) => void): () => void;

  /**
   * Optional: a fresh session id for a session of `userId`, or to replace session `near`
   * (rotate), placed where the backend wants it (Redis Cluster: the user's bucket). The
   * store uses newId() from token.ts when absent.
   */
  newId?(userId?: string | null, near?: string): string;

  /**
   * Optional: tells `listener` about a failure no call returned, such as a periodic memory
   * snapshot that could not be written. The store reports each as an `error` event.
   */
  onError?(listener: (err: unknown) => void): () => void;

  /**
   * Optional: degraded (ok: false) while the backend answers but cannot keep what it is given
   * (a memory backend whose snapshots fail). Cheap and synchronous; /health turns 503 on it.
   */
  health?(): BackendHealth;

  /**
   * Optional: users whose id starts with `prefix` and is greater than `afterUserId`, in user id
   * order (byte order for ASCII ids), at most `limit`, each with its stored session count (expired
   * ones not yet swept included). From an ordered user index: O(log users + limit), never a scan
   * of sessions. Every built-in backend has it; without it, a caller can only look a user up by
   * its full id (listUser).
   */
  scanUsers?(prefix: string, afterUserId: string | null, limit: number, now: number): Awaitable<UserCount[]>;

  /** Optional: a JobLease shared by every process on this backend (cluster-once jobs). */
  jobLease?(): JobLease;

  close(): Awaitable<void>;
}
