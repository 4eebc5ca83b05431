import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { SessionData, Store as ExpressStore } from 'express-session';
import { ENCODED, type EncodedData } from '../core/data.js';
import { isLapseError, LapseError } from '../core/errors.js';
import type { Session } from '../core/session.js';
import type { SessionStore } from '../core/store.js';
import { isValidId } from '../core/token.js';
import { EXPIRED, idleWindow, isPlain, type StoredSession, userIdFrom } from './session-fields.js';

export { idleWindow, type StoredSession, userField, userIdFrom } from './session-fields.js';

/** Options of LapseStore. */
export interface LapseStoreOptions {
  /** The Lapse store that holds the sessions (any backend). */
  store: SessionStore;
  /**
   * The user a session belongs to, e.g. `(sess) => sess.passport?.user`: feeds listUser,
   * revokeUser and maxSessionsPerUser. Numbers are turned into strings; null means none.
   * `sess` is typed with express-session's `SessionData`, so the app's own declaration of
   * it (`declare module 'express-session' { interface SessionData { … } }`) applies. Called on
   * each save with the session being saved, before it is encoded: a change it makes is saved too.
   */
  userId?: (sess: StoredSession & Partial<SessionData>) => string | number | null | undefined;
}

type Callback<T> = (err: unknown, value?: T) => void;

/** What a request read: the data it started from, the store version holding exactly that, its user. */
interface Read {
  data: StoredSession;
  version: number | undefined;
  userId: string | null;
}

// express-session is an optional peer: @fastify/session users get the same store without it.
const Base = loadBase();
const RECENT_PER_ID = 64;
const RECENT_IDS = 10_000;

/**
 * An express-session Store on a Lapse store (callbacks, or promises when no callback is
 * given); @fastify/session uses it as is. The session id is the framework's, its cookie sets
 * the idle window, the Lapse store's absoluteTimeout caps it, and concurrent requests that
 * change different top-level keys of one session both keep their change.
 * @example
 * app.use(session({ store: new LapseStore({ store, userId: (s) => s.passport?.user }), secret,
 *                   resave: false, saveUninitialized: false }));
 */
export class LapseStore extends Base {
  readonly store: SessionStore;
  private readonly userIdOf: LapseStoreOptions['userId'];
  /** What each request read, keyed by the object the framework saves (or the one get returned). */
  private readonly reads = new WeakMap<object, Read>();
  /** @fastify/session builds its own Session from what get returned: its reads are found by content. */
  private readonly recent = new Map<string, Read[]>();
  private expressSession = false;

  constructor(options: LapseStoreOptions) {
    super();
    if (!options || typeof options.store?.update !== 'function') {
      throw new LapseError('LAPSE_INVALID_OPTION', 'LapseStore needs { store }: a Lapse store from createStore()');
    }
    if (options.userId !== undefined && typeof options.userId !== 'function') {
      throw new LapseError('LAPSE_INVALID_OPTION', 'userId must be a function (sess) => string | null');
    }
    this.store = options.store;
    this.userIdOf = options.userId;
  }

  /** The session's data, or null; counts an access (the sliding expiry), like validate(). */
  override get(sid: string, cb?: Callback<SessionData | null>): Promise<SessionData | null> | undefined {
    return settle(this.fetch(sid) as Promise<SessionData | null>, cb);
  }

  /** Saves a session, merging with what concurrent requests wrote since this one read it. */
  override set(sid: string, sess: SessionData, cb?: Callback<void>): Promise<void> | undefined {
    return settle(this.save(sid, sess as unknown as StoredSession), cb);
  }

  /** Extends the session's idle expiry; never rewrites its data. */
  override touch(sid: string, sess: SessionData, cb?: Callback<void>): Promise<void> | undefined {
    return settle(this.extend(sid, sess), cb);
  }

  /** Removes a session. */
  override destroy(sid: string, cb?: Callback<void>): Promise<void> | undefined {
    return settle(this.remove(sid), cb);
  }

  /** Every live session, keyed by id (like MemoryStore); reads the whole store a page at a time. */
  override all(cb?: Callback<Record<string, SessionData>>): Promise<Record<string, SessionData>> | undefined {
    return settle(this.collect(), cb);
  }

  /** Number of live sessions. */
  override length(cb?: Callback<number>): Promise<number> | undefined {
    return settle(this.store.size(), cb);
  }

  /** Every live session id, in id order. */
  ids(cb?: Callback<string[]>): Promise<string[]> | undefined {
    return settle(this.listIds(), cb);
  }

  /** Removes every session of the Lapse store. */
  override clear(cb?: Callback<void>): Promise<void> | undefined {
    this.recent.clear();
    return settle(this.store.clear(), cb);
  }

  /** express-session builds its Session here: remember what this request read, keyed by that Session. */
  override createSession(req: Parameters<ExpressStore['createSession']>[0], sess: SessionData) {
    if (!this.expressSession) {
      this.expressSession = true;
      this.recent.clear();
    }
    const read = this.reads.get(sess);
    const session = super.createSession(req, sess);
    if (read) this.reads.set(session, read);
    return session;
  }

  /**
   * express-session's regenerate destroys the current id first. A session this request
   * neither read nor saved cannot be in the store (its id was generated here): skip that
   * round trip, which is every first login.
   */
  override regenerate(req: Parameters<ExpressStore['regenerate']>[0], fn: (err?: unknown) => void): void {
    const current = (req as { session?: object }).session;
    if (current && !this.reads.has(current)) {
      (this as unknown as { generate(r: typeof req): void }).generate(req);
      process.nextTick(fn);
      return;
    }
    super.regenerate(req, fn);
  }

  private async fetch(sid: string): Promise<StoredSession | null> {
    if (!isValidId(sid)) return null;
    const s = await this.store.touch(sid);
    if (!s || !isPlain(s.data) || !isPlain(s.data.cookie)) return null;
    const data = s.data as StoredSession;
    const read: Read = { data, version: s.version, userId: s.userId };
    // The framework mutates what it gets; Lapse's data is a frozen snapshot, kept as the base.
    const copy = cloneJson(data);
    this.reads.set(copy, read);
    if (!this.expressSession) this.remember(sid, read);
    return copy;
  }

  private async save(sid: string, sess: StoredSession): Promise<void> {
    if (!isValidId(sid)) throw new LapseError('LAPSE_INVALID_INPUT', 'session id must be a non-empty string of at most 256 characters');
    // The user first, from the framework's own object: a mapping that changes what it is given
    // changes what is saved, and the text below is still the one source of the stored data.
    const userId = this.userOf(sess);
    // The JSON form: Cookie.toJSON, dates as ISO strings, what express-session parses back.
    // The store writes this same text (ENCODED): one encode per save, not two.
    const text = JSON.stringify(sess);
    const next = JSON.parse(text) as StoredSession;
    const enc: EncodedData = { text, value: next };
    const idle = idleWindow(next.cookie, Date.now());
    if (idle === EXPIRED) {
      await this.remove(sid);
      return;
    }
    const read = this.reads.get(sess) ?? this.recall(sid, sess);
    let written: Session | null;
    let version: number | undefined;
    if (!read) {
      written = await this.store.set(sid, next, { userId: userId ?? undefined, idleTimeout: idle, [ENCODED]: enc });
      version = written.version;
    } else if (userId !== read.userId || !sameWindow(next.cookie, read.data.cookie)) {
      written = await this.replace(sid, read, next, userId, idle);
    } else {
      ({ written, version } = await this.merge(sid, read, next, enc));
    }
    if (!written) return;
    const now: Read = { data: next, version, userId };
    this.reads.set(sess, now);
    if (!this.expressSession) this.remember(sid, now);
  }

  /**
   * Data-only change: first as a write of exactly what the request holds, valid only while the
   * store is still at the version it read; on a conflict, its changes are applied to the
   * current data with the store's function-form update (versioned and retried).
   */
  private async merge(sid: string, read: Read, next: StoredSession, enc: EncodedData): Promise<{ written: Session | null; version?: number }> {
    try {
      if (read.version !== undefined) {
        try {
          const s = await this.store.update(sid, next, { expectedVersion: read.version, [ENCODED]: enc });
          return { written: s, version: s.version };
        } catch (err) {
          if (!isLapseError(err, 'LAPSE_VERSION_CONFLICT')) throw err;
        }
      }
      const s = await this.store.update<StoredSession>(sid, (cur) => applyChanges(cur, read.data, next));
      return { written: s };
    } catch (err) {
      // Ended while the request was in flight (revoked, expired): it stays ended.
      if (isLapseError(err, 'LAPSE_NOT_FOUND')) return { written: null };
      throw err;
    }
  }

  /** The user or the idle window changed (a login without regenerate, a new maxAge): a replace. */
  private async replace(sid: string, read: Read, next: StoredSession, userId: string | null, idle: number | undefined) {
    const cur = await this.store.get(sid);
    if (!cur) return null;
    const data = applyChanges(cur.data as StoredSession, read.data, next);
    return this.store.set(sid, data, { userId: userId ?? undefined, idleTimeout: idle });
  }

  private async extend(sid: string, sess: SessionData): Promise<void> {
    // The get of this same request already counted the access.
    if (this.reads.has(sess)) return;
    if (!isValidId(sid)) return;
    await this.store.touch(sid);
  }

  private async remove(sid: string): Promise<void> {
    this.recent.delete(sid);
    if (isValidId(sid)) await this.store.delete(sid);
  }

  private async collect(): Promise<Record<string, SessionData>> {
    const out: Record<string, SessionData> = {};
    for await (const s of this.store.values()) out[s.id] = cloneJson(s.data) as SessionData;
    return out;
  }

  private async listIds(): Promise<string[]> {
    const out: string[] = [];
    for await (const id of this.store.keys()) out.push(id);
    return out;
  }

  private userOf(sess: StoredSession): string | null {
    return this.userIdOf ? userIdFrom(this.userIdOf(sess as StoredSession & Partial<SessionData>)) : null;
  }

  /** Keeps a few recent reads per id (bounded), for frameworks that copy what get returned. */
  private remember(sid: string, read: Read): void {
    const list = this.recent.get(sid) ?? [];
    this.recent.delete(sid);
    list.unshift(read);
    if (list.length > RECENT_PER_ID) list.length = RECENT_PER_ID;
    this.recent.set(sid, list);
    if (this.recent.size > RECENT_IDS) this.recent.delete(this.recent.keys().next().value as string);
  }

  /**
   * @fastify/session keeps, under a private symbol, the SHA-256 of the session it restored
   * (cookie left out, keys sorted): the read with that same content is the one it started from.
   */
  private recall(sid: string, sess: object): Read | undefined {
    const list = this.recent.get(sid);
    if (!list) return undefined;
    const key = Object.getOwnPropertySymbols(sess).find((s) => s.description === 'persistedHash');
    const hash = key === undefined ? undefined : (sess as Record<symbol, unknown>)[key];
    if (typeof hash !== 'string') return undefined;
    return list.find((r) => contentHash(r.data) === hash);
  }
}

/**
 * Whether two cookies set the same idle window; it changes only when the app changes maxAge or
 * expires. express-session derives a new cookie's originalMaxAge from its expiry and the
 * clock, so the same maxAge can read a millisecond or two apart: within a second is the same
 * window (a change of window takes the non-versioned replace path, which must stay rare).
 */
function sameWindow(a: unknown, b: unknown): boolean {
  if (!isPlain(a) || !isPlain(b)) return isPlain(a) === isPlain(b);
  const ma = a.originalMaxAge;
  const mb = b.originalMaxAge;
  if (typeof ma === 'number' || typeof mb === 'number') {
    return typeof ma === 'number' && typeof mb === 'number' && Math.abs(ma - mb) < WINDOW_SLACK_MS;
  }
  return (typeof a.expires === 'string' ? a.expires : '') === (typeof b.expires === 'string' ? b.expires : '');
}

const WINDOW_SLACK_MS = 1000;

/**
 * The merge rule: a top-level key the request added, changed or deleted (against what it
 * read) is applied to the current data; every other key keeps its current value. Same key:
 * the last writer wins. The cookie is always the writer's.
 */
export function applyChanges(current: unknown, base: StoredSession, next: StoredSession): StoredSession {
  const out: StoredSession = isPlain(current) ? { ...current } : {};
  for (const k of Object.keys(next)) {
    if (k === 'cookie' || !Object.hasOwn(base, k) || JSON.stringify(next[k]) !== JSON.stringify(base[k])) out[k] = next[k];
  }
  for (const k of Object.keys(base)) if (!Object.hasOwn(next, k)) delete out[k];
  return out;
}

/** @fastify/session's session hash: SHA-256 of the keys-sorted JSON, cookie left out. */
function contentHash(data: StoredSession): string {
  const { cookie: _cookie, ...rest } = data;
  return createHash('sha256').update(sortedJson(rest), 'utf8').digest('hex');
}

function sortedJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : sortedJson(x))).join(',')}]`;
  if (!isPlain(v)) return JSON.stringify(v);
  const parts: string[] = [];
  for (const k of Object.keys(v).sort()) if (v[k] !== undefined) parts.push(`${JSON.stringify(k)}:${sortedJson(v[k])}`);
  return `{${parts.join(',')}}`;
}

/** A mutable deep copy of a JSON value (faster than a JSON round trip for session-sized data). */
function cloneJson<T>(v: T): T {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map(cloneJson) as T;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = cloneJson((v as Record<string, unknown>)[k]);
  return out as T;
}

/** Completes a callback exactly once (on the next tick, so a throwing callback is not caught here), or returns the promise. */
function settle<T>(p: Promise<T>, cb: Callback<T> | undefined): Promise<T> | undefined {
  if (!cb) return p;
  p.then(
    (v) => process.nextTick(cb, null, v),
    (err: unknown) => process.nextTick(cb, err),
  );
  return undefined;
}

function loadBase(): typeof ExpressStore {
  try {
    return (createRequire(import.meta.url)('express-session') as { Store: typeof ExpressStore }).Store;
  } catch {
    return EventEmitter as unknown as typeof ExpressStore;
  }
}
