import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { encodeData } from 'lapse/internal';
import { isLapseError } from 'lapse/internal';
import { idleWindow, type StoredSession, userIdFrom } from 'lapse/internal';
import { expiresAtOf, newRecord } from 'lapse/internal';
import type { SessionStore } from 'lapse/internal';
import { isValidId } from 'lapse/internal';
import type { PeerSession, PeerSource } from './source.js';

/** What a migration did. Rerunning a finished one counts everything as `existing`. */
export interface MigrateCounts {
  scanned: number;
  imported: number;
  existing: number;
  expired: number;
  invalid: number;
}

export interface MigrateOptions {
  /** The Lapse store's idle and absolute timeouts (ms) and its data size limit. */
  idleTimeout: number;
  absoluteTimeout: number;
  maxDataBytes?: number;
  /** Maps a session to its user, as LapseStore's userId does. */
  userId?: (sess: StoredSession) => unknown;
  /** A file where the cursor and counts are kept after every page; removed when the run completes. */
  checkpoint?: string;
  /** Stops after the page in progress (the checkpoint is written, a rerun resumes). */
  signal?: AbortSignal;
  onProgress?: (done: number, total: number | undefined) => void;
}

interface Checkpoint {
  source: string;
  cursor: string;
  counts: MigrateCounts;
}

/**
 * Copies express-session records from a peer store into Lapse, under the same ids, so the
 * cookies users hold keep working with LapseStore. Expired ones are skipped; an id already
 * in Lapse is left alone (a rerun changes nothing). Returns the counts and whether it finished.
 */
export async function migrate(source: PeerSource, store: SessionStore, o: MigrateOptions): Promise<{ counts: MigrateCounts; done: boolean }> {
  const saved = o.checkpoint ? readCheckpoint(o.checkpoint, source.name) : undefined;
  const counts: MigrateCounts = saved?.counts ?? { scanned: 0, imported: 0, existing: 0, expired: 0, invalid: 0 };
  let cursor: string | null = saved?.cursor ?? null;
  const total = await source.total();
  for (;;) {
    const { sessions, next } = await source.page(cursor);
    for (const s of sessions) counts[await copy(s, store, o)]++;
    counts.scanned += sessions.length;
    o.onProgress?.(counts.scanned, total);
    if (next === null) {
      if (o.checkpoint) rmSync(o.checkpoint, { force: true });
      return { counts, done: true };
    }
    cursor = next;
    if (o.checkpoint) writeCheckpoint(o.checkpoint, { source: source.name, cursor, counts });
    if (o.signal?.aborted) return { counts, done: false };
  }
}

async function copy(s: PeerSession, store: SessionStore, o: MigrateOptions): Promise<Exclude<keyof MigrateCounts, 'scanned'>> {
  if (!isValidId(s.id)) return 'invalid';
  let data: StoredSession;
  try {
    data = JSON.parse(s.text) as StoredSession;
  } catch {
    return 'invalid';
  }
  if (typeof data !== 'object' || data === null || typeof data.cookie !== 'object' || data.cookie === null) return 'invalid';
  const now = Date.now();
  const window = idleWindow(data.cookie, now);
  if (window === -1 || (s.expiresAt !== null && s.expiresAt <= now)) return 'expired';
  const idle = window ?? o.idleTimeout;
  let userId: string | null;
  let text: string;
  try {
    userId = o.userId ? userIdFrom(o.userId(data)) : null;
    text = encodeData(data, o.maxDataBytes ?? 256 * 1024);
  } catch (err) {
    if (isLapseError(err, 'LAPSE_INVALID_INPUT') || isLapseError(err, 'LAPSE_PAYLOAD_TOO_LARGE')) return 'invalid';
    throw err;
  }
  // The session ends when the peer would have ended it: its last access is that moment less
  // the idle window. The absolute cap counts from the migration, so nobody is logged out by it.
  const expiresAt = s.expiresAt ?? now + idle;
  const lastAccessedAt = Math.min(now, expiresAt - idle);
  const rec = newRecord({ id: s.id, secretHash: '', userId, data: text, now: lastAccessedAt, idleTimeout: idle, absoluteTimeout: 1 });
  rec.absoluteExpiresAt = now + o.absoluteTimeout;
  rec.expiresAt = expiresAtOf(lastAccessedAt, idle, rec.absoluteExpiresAt);
  try {
    // Straight to the backend, like `lapse import`: no caps, so a migration never evicts what it brought in.
    await store.backend.insert(rec, now, {});
    return 'imported';
  } catch (err) {
    if (isLapseError(err, 'LAPSE_INVALID_INPUT')) return 'existing';
    throw err;
  }
}

function readCheckpoint(file: string, source: string): Checkpoint | undefined {
  if (!existsSync(file)) return undefined;
  const c = JSON.parse(readFileSync(file, 'utf8')) as Checkpoint;
  return c.source === source && typeof c.cursor === 'string' ? c : undefined;
}

function writeCheckpoint(file: string, c: Checkpoint): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(c), { mode: 0o600 });
  renameSync(tmp, file);
}
