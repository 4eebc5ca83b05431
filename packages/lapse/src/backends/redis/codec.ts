import type { Ended, EndReason, SessionRecord } from '../../core/session.js';

/**
 * A session as stored: one JSON object with short keys (see _lib.lua). Numbers are digit
 * strings so that the Lua side (cjson keeps 14 significant digits) never rounds them.
 */
interface Stored {
  h: string;
  u?: string;
  d: string;
  c: string;
  a: string;
  e: string;
  x: string;
  t: string;
  n: string;
  v: string;
  lo?: string;
  lf?: string;
  le?: string;
  ip?: string;
  ua?: string;
}

/** A record as the JSON text stored in Redis; null fields are left out. */
export function encodeRecord(rec: SessionRecord): string {
  const s: Stored = {
    h: rec.secretHash,
    d: rec.data,
    c: String(rec.createdAt),
    a: String(rec.lastAccessedAt),
    e: String(rec.expiresAt),
    x: String(rec.absoluteExpiresAt),
    t: String(rec.idleTimeout),
    n: String(rec.accessCount),
    v: String(rec.version),
  };
  if (rec.userId !== null) s.u = rec.userId;
  if (rec.ip !== null) s.ip = rec.ip;
  if (rec.userAgent !== null) s.ua = rec.userAgent;
  if (rec.lock) {
    s.lo = rec.lock.owner;
    s.lf = String(rec.lock.fence);
    s.le = String(rec.lock.expiresAt);
  }
  return JSON.stringify(s);
}

/** Stored JSON text back into a record. */
export function decodeRecord(id: string, text: string): SessionRecord {
  const s = JSON.parse(text) as Stored;
  return {
    id,
    secretHash: s.h,
    userId: s.u ?? null,
    data: s.d,
    createdAt: Number(s.c),
    lastAccessedAt: Number(s.a),
    expiresAt: Number(s.e),
    absoluteExpiresAt: Number(s.x),
    idleTimeout: Number(s.t),
    accessCount: Number(s.n),
    version: Number(s.v),
    lock: s.lf === undefined ? null : { owner: s.lo ?? '', fence: Number(s.lf), expiresAt: Number(s.le) },
    ip: s.ip ?? null,
    userAgent: s.ua ?? null,
  };
}

/** `{id, stored text}` entries from a script reply as records. */
export function decodeRecords(entries: unknown): SessionRecord[] {
  return (entries as [string, string][]).map(([id, text]) => decodeRecord(id, text));
}

/** The (id, userId | nil, reason) triples scripts return for ended sessions. */
export function decodeEnded(triples: unknown): Ended[] {
  const list = triples as (string | null)[];
  const out: Ended[] = [];
  for (let i = 0; i + 2 < list.length; i += 3) {
    out.push({ id: list[i] as string, userId: list[i + 1] ?? null, reason: list[i + 2] as EndReason });
  }
  return out;
}
