/** Why a session ended. */
export type EndReason = 'idle' | 'absolute' | 'evicted' | 'revoked' | 'rotated';

/** A lease as stored: who holds it, its fencing number and when it ends by itself. */
export interface LockState {
  owner: string;
  fence: number;
  expiresAt: number;
}

/**
 * A session as a backend stores it. `data` is JSON text; `secretHash` is the
 * base64url SHA-256 of the token's secret ('' for sessions made with `set`, which
 * have no token).
 */
export interface SessionRecord {
  id: string;
  secretHash: string;
  userId: string | null;
  data: string;
  createdAt: number;
  lastAccessedAt: number;
  expiresAt: number;
  absoluteExpiresAt: number;
  idleTimeout: number;
  accessCount: number;
  version: number;
  lock: LockState | null;
  ip: string | null;
  userAgent: string | null;
}

/** Every field of a SessionRecord, in one order: what snapshots and exports write. */
export const RECORD_FIELDS = [
  'id', 'secretHash', 'userId', 'data', 'createdAt', 'lastAccessedAt', 'expiresAt',
  'absoluteExpiresAt', 'idleTimeout', 'accessCount', 'version', 'lock', 'ip', 'userAgent',
] as const satisfies readonly (keyof SessionRecord)[];

/** A session as Lapse hands it out. */
export interface Session<T = unknown> {
  id: string;
  userId: string | null;
  data: T;
  createdAt: number;
  lastAccessedAt: number;
  expiresAt: number;
  absoluteExpiresAt: number;
  accessCount: number;
  version: number;
  status: 'active' | 'locked' | 'expired';
  lock: { owner: string; expiresAt: number } | null;
  meta: { ip?: string; userAgent?: string };
}

/** A session that ended, as events and sweeps report it. */
export interface Ended {
  id: string;
  userId: string | null;
  reason: EndReason;
}

/** The one expiry rule: min(lastAccessedAt + idleTimeout, createdAt + absoluteTimeout). */
export function expiresAtOf(lastAccessedAt: number, idleTimeout: number, absoluteExpiresAt: number): number {
  return Math.min(lastAccessedAt + idleTimeout, absoluteExpiresAt);
}

/** A brand-new record: created and last accessed at `now`, version 1, no lease. */
export function newRecord(f: {
  id: string;
  secretHash: string;
  userId: string | null;
  data: string;
  now: number;
  idleTimeout: number;
  absoluteTimeout: number;
}): SessionRecord {
  const absoluteExpiresAt = f.now + f.absoluteTimeout;
  return {
    id: f.id,
    secretHash: f.secretHash,
    userId: f.userId,
    data: f.data,
    createdAt: f.now,
    lastAccessedAt: f.now,
    expiresAt: expiresAtOf(f.now, f.idleTimeout, absoluteExpiresAt),
    absoluteExpiresAt,
    idleTimeout: f.idleTimeout,
    accessCount: 0,
    version: 1,
    lock: null,
    ip: null,
    userAgent: null,
  };
}

/** A session is expired the instant now >= expiresAt. */
export function isExpired(rec: Pick<SessionRecord, 'expiresAt'>, now: number): boolean {
  return now >= rec.expiresAt;
}

/** Why an expired record ended: its absolute cap, or idleness. */
export function expiryReason(rec: Pick<SessionRecord, 'expiresAt' | 'absoluteExpiresAt'>): 'idle' | 'absolute' {
  return rec.expiresAt >= rec.absoluteExpiresAt ? 'absolute' : 'idle';
}

/** The lease in force at `now`, or null when there is none or it has run out. */
export function activeLock(rec: Pick<SessionRecord, 'lock'>, now: number): LockState | null {
  const lock = rec.lock;
  return lock && lock.expiresAt > now ? lock : null;
}

/** Freezes a parsed JSON value all the way down. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    // for-in, not Object.values: no array per object. JSON.parse output has no inherited keys.
    for (const k in value) deepFreeze((value as Record<string, unknown>)[k]);
  }
  return value;
}

/**
 * The data of a record, parsed and deeply frozen: a Session is a snapshot, and data is
 * changed with update(), never by mutating what a read returned.
 */
export function parseData(rec: Pick<SessionRecord, 'data'>): unknown {
  return deepFreeze(JSON.parse(rec.data) as unknown);
}

/** Turns a stored record into the Session callers see (`data`: its parsed data, when the caller has it already). */
export function toSession<T = unknown>(rec: SessionRecord, now: number, extraAccesses = 0, data: unknown = parseData(rec)): Session<T> {
  const lock = activeLock(rec, now);
  const meta: Session['meta'] = {};
  if (rec.ip !== null) meta.ip = rec.ip;
  if (rec.userAgent !== null) meta.userAgent = rec.userAgent;
  return {
    id: rec.id,
    userId: rec.userId,
    data: data as T,
    createdAt: rec.createdAt,
    lastAccessedAt: rec.lastAccessedAt,
    expiresAt: rec.expiresAt,
    absoluteExpiresAt: rec.absoluteExpiresAt,
    accessCount: rec.accessCount + extraAccesses,
    version: rec.version,
    status: now >= rec.expiresAt ? 'expired' : lock ? 'locked' : 'active',
    lock: lock ? { owner: lock.owner, expiresAt: lock.expiresAt } : null,
    meta,
  };
}
