import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { backendError, errors, LapseError } from '../../core/errors.js';
import { requirePeer } from '../../util/peer.js';
import { APPLICATION_ID, MIGRATIONS, READABLE_BY, SCHEMA_VERSION } from './schema.js';
import { HOME_SLOT_SQL, homeSlot } from './slot.js';

export type Db = BetterSqlite3.Database;

const Database = requirePeer<typeof BetterSqlite3>('better-sqlite3', 'lapse/sqlite');

export interface OpenOptions {
  busyTimeoutMs: number;
  synchronous: 'normal' | 'full';
  cacheSizeMiB: number;
  /** SQLite's own checkpoint threshold in pages (its default is 1000). */
  autocheckpointPages: number;
}

/**
 * Makes the file (created empty if missing) readable by its owner only, before SQLite opens it:
 * it holds user ids, addresses and secret hashes. SQLite gives the -wal and -shm files the
 * database file's mode, so they follow; ones left by an earlier run are tightened too.
 */
function ownerOnly(path: string): void {
  try {
    closeSync(openSync(path, 'a', 0o600));
    for (const p of [path, `${path}-wal`, `${path}-shm`]) {
      // Only our own files: another user's file is theirs to set (chmod would fail anyway).
      const st = existsSync(p) ? statSync(p) : null;
      if (st && (st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) chmodSync(p, 0o600);
    }
  } catch (err) {
    throw refuse(path, `cannot be made private to its owner (${message(err)})`, err);
  }
}

const HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * Opens (or creates) a Lapse database: refuses a file that is not one, sets WAL and the
 * connection pragmas, and runs the forward migrations. A refused file is left as it was:
 * every check reads before anything writes.
 */
export function openDatabase(path: string, opts: OpenOptions): Db {
  const memory = path === ':memory:' || path === '';
  if (!memory) {
    checkHeader(path);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    ownerOnly(path);
  }
  let db: Db;
  try {
    db = new Database(path, { timeout: opts.busyTimeoutMs });
  } catch (err) {
    // better-sqlite3 loads its native binding on the first open: a missing or mismatched build is not the file's fault.
    if (nativeBindingFailed(err)) throw errors.nativeBinding('better-sqlite3', 'lapse/sqlite', err);
    throw refuse(path, `cannot be opened (${message(err)})`, err);
  }
  try {
    inspect(db, path);
    db.function(HOME_SLOT_SQL, { deterministic: true }, homeSlot);
    // WAL lets readers run beside one writer and other processes; it is a property of the
    // file, set once. synchronous=NORMAL in WAL loses no commit when a process dies, only
    // (possibly) the last ones when the operating system or the power goes.
    if (!memory) db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${opts.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('foreign_keys = ON');
    db.pragma(`cache_size = ${-Math.round(opts.cacheSizeMiB * 1024)}`);
    db.pragma(`wal_autocheckpoint = ${Math.round(opts.autocheckpointPages)}`);
    // After a checkpoint, a WAL that grew during a burst is cut back instead of staying large.
    db.pragma('journal_size_limit = 67108864');
    migrate(db, path);
    return db;
  } catch (err) {
    db.close();
    // Another connection held the write lock past busyTimeout (a long write, or another
    // process migrating the file): the file is fine, it could not be had in time.
    if ((err as { code?: unknown }).code === 'SQLITE_BUSY') throw backendError(err, `sqlite: the file ${path} stayed locked`);
    throw err;
  }
}

/** A file that exists and is not empty must start with the SQLite header. */
function checkHeader(path: string): void {
  if (!existsSync(path)) return;
  const buf = Buffer.alloc(HEADER.length);
  let n: number;
  const fd = openSync(path, 'r');
  try {
    n = readSync(fd, buf, 0, buf.length, 0);
  } finally {
    closeSync(fd);
  }
  if (n === 0) return; // an empty file is an empty database
  if (n < HEADER.length || !buf.equals(HEADER)) throw refuse(path, 'is not an SQLite database');
}

/** Reads the identity of the file and refuses what is not a Lapse database of a known version. */
function inspect(db: Db, path: string): void {
  let appId: number;
  let version: number;
  let tables: string[];
  try {
    appId = db.pragma('application_id', { simple: true }) as number;
    version = db.pragma('user_version', { simple: true }) as number;
    tables = db
      .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
      .pluck()
      .all() as string[];
  } catch (err) {
    throw refuse(path, `cannot be read as an SQLite database (${message(err)})`, err);
  }
  if (appId === APPLICATION_ID) {
    if (version > SCHEMA_VERSION && !readableHere(db)) {
      throw refuse(path, `has schema version ${version}, newer than this Lapse understands (${SCHEMA_VERSION}); upgrade Lapse`);
    }
    return;
  }
  if (appId !== 0) throw refuse(path, `belongs to another application (application_id ${appId})`);
  if (version !== 0 || tables.length > 0) {
    const what = tables.length > 0 ? `it has tables ${tables.slice(0, 5).join(', ')}` : `user_version is ${version}`;
    throw refuse(path, `is not a Lapse database (${what})`);
  }
}

/** Runs the missing migrations, each under the write lock so two processes never both run one. */
function migrate(db: Db, path: string): void {
  const step = db.transaction(() => {
    // Read again under the lock: another process may have migrated since inspect().
    const current = db.pragma('user_version', { simple: true }) as number;
    if (current > SCHEMA_VERSION) {
      // A newer Lapse that keeps this version's statements working: used as it is, never downgraded.
      if (readableHere(db)) return;
      throw refuse(path, `was upgraded to schema version ${current} by a newer Lapse`);
    }
    for (let v = current; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v] as string);
    if (current < SCHEMA_VERSION) {
      db.prepare("INSERT INTO lapse_meta (key, value) VALUES ('readable_by', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(READABLE_BY);
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }
  });
  step.immediate();
}

/**
 * Whether a file of a newer schema version says this version's code may still use it (its
 * `lapse_meta.readable_by`, see READABLE_BY). No marker, or one that cannot be read: no.
 */
function readableHere(db: Db): boolean {
  let oldest: unknown;
  try {
    oldest = db.prepare("SELECT value FROM lapse_meta WHERE key = 'readable_by'").pluck().get();
  } catch {
    return false;
  }
  return typeof oldest === 'number' && Number.isInteger(oldest) && oldest <= SCHEMA_VERSION;
}

function refuse(path: string, why: string, cause?: unknown): LapseError {
  return new LapseError('LAPSE_INVALID_OPTION', `sqlite: the file ${path} ${why}`, cause === undefined ? undefined : { cause });
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whether an error of `new Database()` says the native addon did not load (not built, or built for another Node). */
function nativeBindingFailed(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return e?.code === 'ERR_DLOPEN_FAILED' || /bindings file|NODE_MODULE_VERSION|better_sqlite3\.node|invalid ELF header/.test(String(e?.message));
}
