import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Awaitable, Backend, BackendStats, InsertPolicy } from './backend.js';
import { memory } from '../backends/memory/memory.js';
import { timerClock, type TimerClock } from './clock.js';
import { ENCODED, type EncodedData, encodeData } from './data.js';
import { type Duration, MAX_LEASE_MS } from './duration.js';
import { CleanupSteps } from './cleanup.js';
import { backendError, errors, isLapseError, LapseError } from './errors.js';
import { checkCreateInput, checkId, checkUserId, inputDuration, type CreateInput } from './input.js';
import { fenceOf, type Lease, type LeaseRef, makeLease } from './lease-handle.js';
import { LockLine } from './lock-line.js';
import { LockWaiters } from './lock-waiters.js';
import { defaultLogger, type Logger } from '../util/logger.js';
import { type JobHandle, Scheduler } from '../scheduler/scheduler.js';
import { ParsedDataCache } from './parsed-data.js';
import { activeLock, type Ended, newRecord, type Session, type SessionRecord, toSession } from './session.js';
import { type ResolvedOptions, resolveOptions, type StoreOptions, touchIntervalFor } from './store-options.js';
import { conflictBackoff, UPDATE_BASIS, UpdateQueue } from './update-queue.js';
import { type WriteHealth, WriteHealthTracker } from './write-health.js';
import { formatToken, hashSecret, newId, newSecret, parseToken, verifySecretOrDummy } from './token.js';

export type { StoreOptions } from './store-options.js';

/** Payload of every store event. */
export interface StoreEvent {
  id: string;
  userId: string | null;
  reason: string;
  at: number;
  /** For 'rotated': the new session id. */
  newId?: string;
  /** For 'locked' / 'unlocked': the lease's fencing number. */
  fence?: number;
}

export type StoreEventName = 'created' | 'expired' | 'evicted' | 'revoked' | 'rotated' | 'locked' | 'unlocked' | 'error';

export interface StoreStats extends BackendStats {
  created: number;
  expired: number;
  evicted: number;
  revoked: number;
  rotated: number;
  validations: number;
  backendErrors: number;
  /** Function-form updates written again because another process wrote the session first. */
  updateRetries: number;
}

const SWEEP_BATCH = 1000;
// A synchronous backend's sweep: batches start small (its first touches of cold memory can be
// slow), are sized to about SWEEP_BATCH_MS, and the loop yields every SWEEP_SLICE_MS.
const SWEEP_FIRST_BATCH = 64;
const SWEEP_MIN_BATCH = 16;
const SWEEP_BATCH_MS = 2;
const SWEEP_SLICE_MS = 6;
// The insert options of a set without a lease: one object, not one per call.
const REPLACE = Object.freeze({ replace: true });
// Pending accesses are written by the cleanup job; past this many they are written at once.
const FLUSH_AT = 250_000;
const UPDATE_ATTEMPTS = 100;
// Sessions whose parsed data the store keeps (each checked against version and text).
const PARSED_DATA_ENTRIES = 10_000;

/** Whether `last`, this process's latest write of session `id`, already moved its version past `expected`. */
function staleAfter(last: SessionRecord | undefined, id: string, expected: number): last is SessionRecord {
  return last !== undefined && last.id === id && last.version > expected;
}

/** A function-form update's function. */
type Step = (prev: unknown) => unknown;

type Basis = Pick<Session, 'id' | 'version' | 'data' | 'expiresAt'>;

function conflict(id: string, at: { version: number }, expected: number): LapseError {
  return errors.versionConflict(id, at.version, expected);
}

/**
 * Creates a session store.
 * @example
 * const store = createStore({ idleTimeout: '30m', absoluteTimeout: '12h' });
 * const { token } = await store.create({ userId: 'u1', data: { role: 'admin' } });
 * const session = await store.validate(token); // Session | null
 */
export function createStore(options: StoreOptions = {}): SessionStore {
  return new SessionStore(options);
}

/** Session policy, events and validation over one Backend. */
export class SessionStore {
  readonly backend: Backend;
  readonly scheduler: Scheduler;
  readonly logger: Logger;
  private readonly opts: ResolvedOptions;
  private readonly clock: TimerClock;
  private readonly events = new EventEmitter();
  private readonly waiters: LockWaiters;
  /** One read-modify-write of a session in flight at a time, in this process. */
  private readonly updates = new UpdateQueue<SessionRecord>();
  private readonly lockLine: LockLine;
  /** Accesses counted but not yet written (touchInterval coalescing). */
  private pending = new Map<string, { n: number; at: number }>();
  private counters = { created: 0, expired: 0, evicted: 0, revoked: 0, rotated: 0, validations: 0, backendErrors: 0, updateRetries: 0 };
  private closing: Promise<void> | undefined;
  private readonly ownScheduler: boolean;
  private readonly unsubscribe: (() => void) | undefined;
  private readonly writes: WriteHealthTracker;
  private readonly unsubscribeErrors: (() => void) | undefined;
  private readonly cleanupJob: JobHandle | undefined;
  /** Parsed data of recently read sessions, by id and version: a hot session is parsed once. */
  private readonly parsed = new ParsedDataCache(PARSED_DATA_ENTRIES);

  constructor(options: StoreOptions = {}) {
    this.opts = resolveOptions(options);
    this.clock = timerClock(options.clock);
    this.logger = options.logger ?? defaultLogger();
    this.backend = options.backend ?? memory({ clock: this.clock, logger: this.logger });
    this.waiters = new LockWaiters(this.clock);
    this.lockLine = new LockLine(this.clock);
    this.writes = new WriteHealthTracker(this.backend);
    this.unsubscribe = this.backend.onUnlock?.((id) => this.waiters.notify(id));
    this.unsubscribeErrors = this.backend.onError?.((err) => void this.failed(err));
    this.ownScheduler = !options.scheduler;
    this.scheduler =
      options.scheduler ?? new Scheduler({ logger: this.logger, clock: this.clock, lease: this.backend.jobLease?.() });
    if (this.opts.sweepInterval !== false) {
      this.cleanupJob = this.scheduler.every('session_cleanup', this.opts.sweepInterval, () => this.cleanup(), { owner: this });
    }
  }

  /** Creates a session; the token is returned once and never stored. */
  async create(input?: CreateInput): Promise<{ token: string; session: Session }> {
    this.assertOpen();
    const i = checkCreateInput(input);
    const data = encodeData(i.data, this.opts.maxDataBytes);
    const now = this.clock.now();
    const id = this.backend.newId?.(i.userId) ?? newId();
    const secret = newSecret();
    const rec = this.newRecord(id, hashSecret(secret), i.userId, data, now, i.idleTimeout, i.absoluteTimeout);
    rec.ip = i.ip;
    rec.userAgent = i.userAgent;
    const { record, ended } = await this.call(() => this.backend.insert(rec, now, this.policy()));
    this.reportEnded(ended, now);
    this.counters.created++;
    this.emit('created', { id, userId: i.userId, reason: 'created', at: now });
    return { token: formatToken(id, secret), session: this.session(record, now) };
  }

  /** The per-request path: the session behind a token, or null (malformed, unknown, wrong secret, expired, revoked). */
  validate(token: string): Promise<Session | null> {
    // Not async on purpose: with a synchronous backend (memory) this is the whole hot path,
    // and it settles with one promise instead of a chain of awaits, and no closures.
    try {
      this.assertOpen();
      const parsed = parseToken(token);
      if (!parsed) return Promise.resolve(null);
      const now = this.clock.now();
      const rec = this.read(parsed.id, now);
      if (rec instanceof Promise) return rec.then((r) => this.checked(r, parsed.secret, now));
      return Promise.resolve(this.checked(rec, parsed.secret, now));
    } catch (err) {
      return Promise.reject(this.failed(err));
    }
  }

  /**
   * Counts an access to a session by id, without a token: for trusted server-side
   * activity (a live socket keeps its session alive). Null when the session is gone.
   */
  async touch(id: string): Promise<Session | null> {
    this.assertOpen();
    const now = this.clock.now();
    const rec = await this.read(checkId(id), now);
    return rec ? this.access(rec, now) : null;
  }

  /** The session with this id, counting no access (the admin view). */
  get(id: string): Promise<Session | null> {
    try {
      this.assertOpen();
      const now = this.clock.now();
      const rec = this.read(checkId(id), now);
      if (rec instanceof Promise) return rec.then((r) => this.view(r, now));
      return Promise.resolve(this.view(rec, now));
    } catch (err) {
      return Promise.reject(this.failed(err));
    }
  }

  /**
   * Replaces a session's data, or derives it from the previous data with a function
   * (retried on concurrent writes, so no update is lost).
   * @example await store.update(id, (prev) => ({ ...prev, cart: [] }))
   */
  async update<T = unknown>(
    id: string,
    data: T | ((prev: T) => T | Promise<T>),
    opts: { expectedVersion?: number; lease?: LeaseRef; [UPDATE_BASIS]?: Basis; [ENCODED]?: EncodedData } = {},
  ): Promise<Session<T>> {
    this.assertOpen();
    checkId(id);
    const fence = fenceOf(opts.lease);
    const expected = opts.expectedVersion;
    if (typeof data !== 'function') {
      const enc = opts[ENCODED];
      const text = enc ? encodeData(enc.value, this.opts.maxDataBytes, enc.text) : encodeData(data, this.opts.maxDataBytes);
      const write = async (): Promise<SessionRecord> => {
        const now = this.clock.now();
        return this.call(() => this.backend.update(id, text, now, { expectedVersion: expected, fence }));
      };
      // A versioned write waits its turn behind this process's writes of the session, and fails
      // at once, without a write, when one of them already moved the version past it.
      const rec = await (expected === undefined
        ? write()
        : this.updates.run(id, (last) => (staleAfter(last, id, expected) ? Promise.reject(conflict(id, last, expected)) : write())));
      // Caller-encoded data is parsed already: kept as the cached data of the new version, not parsed again.
      if (enc && rec.data === text) return toSession<T>(rec, this.clock.now(), 0, this.parsed.putParsed(rec, enc.value));
      return this.session<T>(rec, this.clock.now());
    }
    const fn = data as (prev: T) => T | Promise<T>;
    if (expected !== undefined) {
      const rec = await this.updates.run(id, (last) => this.updateWith(id, [fn as Step], expected, fence, last).then((r) => r.record as SessionRecord));
      return this.session<T>(rec, this.clock.now());
    }
    // Updates of one session queued behind the one in flight are written together (one write).
    const group = fence === undefined ? '' : String(fence);
    const basis = opts[UPDATE_BASIS];
    const rec = await this.updates.join(id, group, fn as Step, (steps, last) =>
      this.updateWith(id, steps, undefined, fence, last, basis),
    );
    return this.session<T>(rec, this.clock.now());
  }

  /**
   * Function-form updates of one session, their turn come: each function runs on the data the
   * one before it returned, starting from the record this process wrote last (no read) or a
   * fresh read, and one write carries them all; all run again when another process wrote
   * between. A function that throws (or returns what cannot be stored) fails its own caller only.
   */
  private async updateWith(
    id: string,
    steps: Step[],
    expected: number | undefined,
    fence: number | undefined,
    last: SessionRecord | undefined,
    basis?: Basis,
  ): Promise<{ record: SessionRecord | undefined; failed: Map<number, unknown> }> {
    for (let attempt = 0; ; attempt++) {
      const before = this.clock.now();
      if (expected !== undefined && staleAfter(last, id, expected)) throw conflict(id, last, expected);
      let start: { version: number; text: string } | undefined;
      if (attempt === 0 && expected === undefined) {
        // The newer of the two (versions only grow): this process's last write, or the caller's read.
        const useLast = last?.id === id && last.expiresAt > before;
        const useBasis = basis?.id === id && basis.expiresAt > before && (!useLast || basis.version > (last as SessionRecord).version);
        if (useBasis) start = { version: (basis as Basis).version, text: JSON.stringify((basis as Basis).data) };
        else if (useLast) start = { version: (last as SessionRecord).version, text: (last as SessionRecord).data };
      }
      if (!start) {
        const prev = await this.read(id, before);
        if (!prev) throw errors.notFound(id);
        if (expected !== undefined && prev.version !== expected) throw conflict(id, prev, expected);
        start = { version: prev.version, text: prev.data };
      }
      const failed = new Map<number, unknown>();
      let text = start.text;
      for (let i = 0; i < steps.length; i++) {
        try {
          text = encodeData(await (steps[i] as Step)(JSON.parse(text)), this.opts.maxDataBytes);
        } catch (err) {
          if (steps.length === 1) throw err;
          failed.set(i, err);
        }
      }
      if (failed.size === steps.length) return { record: undefined, failed }; // nothing to write
      const now = this.clock.now();
      const version = start.version;
      try {
        const record = await this.call(() => this.backend.update(id, text, now, { expectedVersion: version, fence }));
        return { record, failed };
      } catch (err) {
        if (!isLapseError(err, 'LAPSE_VERSION_CONFLICT') || expected !== undefined || attempt >= UPDATE_ATTEMPTS) throw err;
        this.counters.updateRetries++;
      }
      await conflictBackoff(attempt + 1);
    }
  }

  /**
   * Gives the session a new id and secret (same data, user and createdAt); the old token
   * is dead at once. An invalid token is LAPSE_UNAUTHORIZED.
   */
  async rotate(token: string, opts: { lease?: LeaseRef } = {}): Promise<{ token: string; session: Session }> {
    this.assertOpen();
    const parsed = parseToken(token);
    if (!parsed) throw errors.invalidToken();
    // In turn with this process's updates of the session: a rotate reads after they wrote.
    const at: { now: number; old?: SessionRecord } = { now: 0 };
    const secret = newSecret();
    const rec = await this.updates.run(parsed.id, async () => {
      const now = this.clock.now();
      const from = await this.verified(token, now);
      if (!from) throw errors.invalidToken();
      at.now = now;
      at.old = from;
      const id = this.backend.newId?.(from.userId, from.id) ?? newId();
      return this.call(() => this.backend.rotate(from.id, { id, secretHash: hashSecret(secret) }, now, { fence: fenceOf(opts.lease) }));
    });
    const old = at.old as SessionRecord;
    const now = at.now;
    const id = rec.id;
    this.pending.delete(old.id);
    this.counters.rotated++;
    this.emit('rotated', { id: old.id, userId: old.userId, reason: 'rotated', at: now, newId: id });
    this.backend.publishEnded?.([{ id: old.id, userId: old.userId, reason: 'rotated' }]);
    return { token: formatToken(id, secret), session: this.session(rec, now) };
  }

  /** Deletes a session by id; respects a lease unless you pass it. */
  async delete(id: string, opts: { lease?: LeaseRef } = {}): Promise<boolean> {
    this.assertOpen();
    const now = this.clock.now();
    const rec = await this.call(() => this.backend.remove(checkId(id), now, { fence: fenceOf(opts.lease) }));
    return this.revoked(rec, now);
  }

  /** Ends the session behind a token (logout). A security action: a lease does not block it. */
  async revoke(token: string): Promise<boolean> {
    this.assertOpen();
    const now = this.clock.now();
    const rec = await this.verified(token, now);
    if (!rec) return false;
    return this.revoked(await this.call(() => this.backend.remove(rec.id, now, { force: true })), now);
  }

  /** Ends every session of a user ("log out everywhere"), optionally keeping one. */
  async revokeUser(userId: string, opts: { except?: string } = {}): Promise<number> {
    this.assertOpen();
    const uid = checkUserId(userId);
    if (uid === null) throw errors.required('userId');
    const now = this.clock.now();
    const ended = await this.call(() => this.backend.removeUser(uid, now, opts.except));
    this.reportEnded(ended, now);
    return ended.filter((e) => e.reason === 'revoked').length;
  }

  /** The user's live sessions, most recently used first ("your devices"). */
  async listUser(userId: string): Promise<Session[]> {
    this.assertOpen();
    const uid = checkUserId(userId);
    if (uid === null) throw errors.required('userId');
    const now = this.clock.now();
    const recs = await this.call(() => this.backend.listUser(uid, now));
    return recs.map((r) => this.seen(r, now));
  }

  /**
   * Takes a lease on a session. With `wait`, waits (woken on release) up to that long,
   * then LAPSE_LOCK_TIMEOUT; without it, a held lease is LAPSE_LOCKED at once.
   */
  async lock(id: string, opts: { owner?: string; ttl?: Duration; wait?: Duration } = {}): Promise<Lease> {
    this.assertOpen();
    checkId(id);
    const ttl = opts.ttl === undefined ? this.opts.lockTimeout : inputDuration(opts.ttl, 'ttl', MAX_LEASE_MS);
    const wait = opts.wait === undefined ? 0 : inputDuration(opts.wait, 'wait');
    const owner = opts.owner ?? randomUUID();
    if (typeof owner !== 'string' || owner.length === 0 || owner.length > 256) {
      throw errors.inputMustBe('owner', 'a non-empty string of at most 256 characters');
    }
    const deadline = this.clock.now() + wait;
    if (wait === 0) return this.acquire(id, owner, ttl, wait, deadline);
    // Waiters of this process take turns: a release wakes the first, not all of them.
    return this.lockLine.turn(
      id,
      wait,
      () => this.acquire(id, owner, ttl, wait, deadline),
      () => errors.lockTimeout(id, wait),
    );
  }

  /** Tries for the lease until `deadline`, woken by releases. */
  private async acquire(id: string, owner: string, ttl: number, wait: number, deadline: number): Promise<Lease> {
    let backoff = 25;
    for (;;) {
      this.assertOpen();
      const now = this.clock.now();
      try {
        const state = await this.call(() => this.backend.lock(id, owner, ttl, now));
        await this.leaseEvent('locked', id, 'locked', now, state.fence);
        return makeLease(id, state, ttl, {
          extend: (fence, next) => this.call(() => this.backend.extendLock(id, fence, next, this.clock.now())),
          release: (fence) => this.unlock(id, fence),
        }, (v) => inputDuration(v, 'ttl', MAX_LEASE_MS));
      } catch (err) {
        if (!isLapseError(err, 'LAPSE_LOCKED') || wait === 0) throw err;
      }
      this.assertOpen();
      const rec = await this.read(id, now);
      const held = rec && activeLock(rec, now);
      if (this.clock.now() >= deadline) {
        throw errors.lockTimeout(id, wait);
      }
      // Woken by a release; the timer is only a backstop for releases we cannot hear
      // (another process without onUnlock) and for the lease's own end.
      const wakeAt = Math.min(deadline, held ? held.expiresAt : now, now + backoff);
      backoff = Math.min(backoff * 2, 1000);
      await this.waiters.wait(id, wakeAt - now);
    }
  }

  /**
   * Runs `fn` while holding a lease; the lease is released even when fn throws.
   * @example await store.withLock(id, (lease) => store.update(id, next, { lease }))
   */
  async withLock<R>(
    id: string,
    fn: (lease: Lease) => R | Promise<R>,
    opts: { owner?: string; ttl?: Duration; wait?: Duration } = {},
  ): Promise<R> {
    const lease = await this.lock(id, opts);
    try {
      return await fn(lease);
    } finally {
      await lease.release().catch((err) => void this.failed(err, true));
    }
  }

  /**
   * Removes expired sessions in bounded batches, yielding between them. A backend that answers
   * synchronously (memory) is given batches sized to about SWEEP_BATCH_MS each, and the loop
   * yields once SWEEP_SLICE_MS of them have run: the event loop is blocked by time, not by count.
   */
  async sweep(opts: { limit?: number } = {}): Promise<{ expired: number }> {
    this.assertOpen();
    const limit = opts.limit ?? Number.POSITIVE_INFINITY;
    if (!(limit >= 0)) throw errors.inputMustBe('limit', 'a number >= 0');
    let expired = 0;
    let size = SWEEP_FIRST_BATCH;
    let slice = performance.now();
    while (expired < limit) {
      const now = this.clock.now();
      const batch = Math.min(size, limit - expired);
      const started = performance.now();
      let out: Awaitable<Ended[]>;
      try {
        out = this.backend.sweep(now, batch);
      } catch (err) {
        throw this.failed(err);
      }
      let ended: Ended[];
      if (out instanceof Promise) {
        ended = await out.catch(this.rejectFailed);
        size = SWEEP_BATCH;
      } else {
        ended = out;
        const took = performance.now() - started;
        if (took < SWEEP_BATCH_MS / 2) size = Math.min(size * 2, SWEEP_BATCH);
        else if (took > SWEEP_BATCH_MS * 2) size = Math.max(size >> 1, SWEEP_MIN_BATCH);
      }
      this.reportEnded(ended, now);
      expired += ended.length;
      if (ended.length < batch) break;
      if (!(out instanceof Promise) && performance.now() - slice < SWEEP_SLICE_MS) continue;
      await new Promise<void>((r) => setImmediate(r));
      slice = performance.now();
    }
    return { expired };
  }

  /** Counts from the backend (no scan) plus this process's event counters. */
  async stats(): Promise<StoreStats> {
    this.assertOpen();
    const s = await this.call(() => this.backend.stats(this.clock.now()));
    return { ...s, ...this.counters };
  }

  /** Subscribes to 'created' 'expired' 'evicted' 'revoked' 'rotated' 'locked' 'unlocked' 'error'. */
  on(event: 'error', listener: (err: LapseError) => void): this;
  on(event: Exclude<StoreEventName, 'error'>, listener: (e: StoreEvent) => void): this;
  on(event: StoreEventName, listener: (e: never) => void): this {
    this.events.on(event, listener as (e: unknown) => void);
    return this;
  }

  /** Removes a listener added with on(). */
  off(event: StoreEventName, listener: (e: never) => void): this {
    this.events.off(event, listener as (e: unknown) => void);
    return this;
  }

  // ---- Map-like face: keys are session ids ----

  /** Upserts data under a caller-chosen id (no token). Keeps createdAt of a live session. */
  set(
    id: string,
    data: unknown,
    opts: { userId?: string; idleTimeout?: Duration; absoluteTimeout?: Duration; lease?: LeaseRef; [ENCODED]?: EncodedData } = {},
  ): Promise<Session> {
    // Not async on purpose (as validate): a synchronous backend (memory) settles with one promise.
    try {
      this.assertOpen();
      checkId(id);
      const enc = opts[ENCODED];
      const text = enc ? encodeData(enc.value, this.opts.maxDataBytes, enc.text) : encodeData(data, this.opts.maxDataBytes);
      const idle = opts.idleTimeout === undefined ? undefined : inputDuration(opts.idleTimeout, 'idleTimeout');
      const abs = opts.absoluteTimeout === undefined ? undefined : inputDuration(opts.absoluteTimeout, 'absoluteTimeout');
      const now = this.clock.now();
      const userId = checkUserId(opts.userId);
      const fence = fenceOf(opts.lease);
      const backend = this.backend;
      if (backend.upsertLive === undefined) return this.insertForSet(id, userId, text, now, idle, abs, fence, enc);
      // A live session written in place from these fields (memory): no record is built for it.
      const ended: Ended[] = [];
      let live: Awaitable<SessionRecord | undefined>;
      try {
        live = backend.upsertLive(id, text, userId, idle ?? this.opts.idleTimeout, now, this.policy(), fence, ended);
      } catch (err) {
        throw this.failed(err);
      }
      if (live instanceof Promise) {
        // A wrapper that answers later (a proxy around the backend): the same steps, once it has.
        return live.then(
          (r) => (r === undefined ? this.insertForSet(id, userId, text, now, idle, abs, fence, enc) : this.stored(r, ended, now, text, enc)),
          this.rejectFailed,
        );
      }
      if (live !== undefined) return Promise.resolve(this.stored(live, ended, now, text, enc));
      return this.insertForSet(id, userId, text, now, idle, abs, fence, enc);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * A set written as an insert (with replace): every backend's path, and memory's for an id with
   * no live session. Throws what fails before the write; set and its `then` make it a rejection.
   */
  private insertForSet(
    id: string,
    userId: string | null,
    text: string,
    now: number,
    idle: number | undefined,
    abs: number | undefined,
    fence: number | undefined,
    enc: EncodedData | undefined,
  ): Promise<Session> {
    const rec = this.newRecord(id, '', userId, text, now, idle, abs);
    let out: Awaitable<{ record: SessionRecord; ended: Ended[] }>;
    try {
      out = this.backend.insert(rec, now, this.policy(), fence === undefined ? REPLACE : { replace: true, fence });
    } catch (err) {
      throw this.failed(err);
    }
    if (!(out instanceof Promise)) return Promise.resolve(this.stored(out.record, out.ended, now, text, enc));
    return out.then((r) => this.stored(r.record, r.ended, now, text, enc), this.rejectFailed);
  }

  /** After a set's write: its events, and the Session of what it wrote. */
  private stored(record: SessionRecord, ended: Ended[], now: number, text: string, enc: EncodedData | undefined): Session {
    if (ended.length > 0) this.reportEnded(ended, now);
    if (record.version === 1) {
      this.counters.created++;
      this.emit('created', { id: record.id, userId: record.userId, reason: 'created', at: now });
    }
    // The data was just written: parsed from its text (a frozen copy), with no cache lookup first;
    // caller-encoded data (ENCODED) is parsed already and kept as it is.
    const parsed = enc && record.data === text ? this.parsed.putParsed(record, enc.value) : this.parsed.put(record);
    return toSession(record, now, 0, parsed);
  }

  /** Whether a live session has this id. */
  async has(id: string): Promise<boolean> {
    return (await this.get(id)) !== null;
  }

  /** Live sessions. */
  async size(): Promise<number> {
    this.assertOpen();
    return this.call(() => this.backend.count(this.clock.now()));
  }

  /** Removes every session (no events, like Map.clear). */
  async clear(): Promise<void> {
    this.assertOpen();
    this.pending.clear();
    await this.call(() => this.backend.clear());
  }

  /** Live session ids, in id order. */
  async *keys(): AsyncGenerator<string> {
    for await (const s of this.values()) yield s.id;
  }

  /** Live sessions, in id order, read a page at a time. */
  async *values(): AsyncGenerator<Session> {
    let after: string | null = null;
    for (;;) {
      this.assertOpen();
      const now = this.clock.now();
      const page: SessionRecord[] = await this.call(() => this.backend.scan(after, 500, now));
      for (const r of page) yield this.seen(r, now);
      if (page.length < 500) return;
      after = (page[page.length - 1] as SessionRecord).id;
    }
  }

  /** [id, session] pairs, in id order. */
  async *entries(): AsyncGenerator<[string, Session]> {
    for await (const s of this.values()) yield [s.id, s];
  }

  /** One page of live sessions after `cursor` (an id), for admin listings. */
  async page(opts: { cursor?: string | null; limit?: number } = {}): Promise<{ sessions: Session[]; cursor: string | null }> {
    this.assertOpen();
    const limit = Math.min(Math.max(1, opts.limit ?? 100), 1000);
    const now = this.clock.now();
    const recs = await this.call(() => this.backend.scan(opts.cursor ?? null, limit, now));
    const last = recs.length === limit ? (recs[recs.length - 1] as SessionRecord).id : null;
    return { sessions: recs.map((r) => this.seen(r, now)), cursor: last };
  }

  /** Stops the jobs, writes pending accesses, closes the backend. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** The Session of a record, its data parsed once per id and version (ParsedDataCache). */
  private session<T = unknown>(rec: SessionRecord, now: number, extraAccesses = 0): Session<T> {
    return toSession<T>(rec, now, extraAccesses, this.parsed.of(rec));
  }

  /**
   * Whether writes are being kept: the backend's own report, and, after a backend failure was
   * seen, a probe write (never while all is well). What /health answers on.
   */
  writeHealth(): Promise<WriteHealth> {
    return this.writes.check(this.clock.now());
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  // ---- internals ----

  private async shutdown(): Promise<void> {
    const steps = new CleanupSteps();
    if (this.ownScheduler) await steps.run(() => this.scheduler.stop());
    else await steps.run(() => this.cleanupJob?.remove());
    await steps.run(() => this.flushAccesses());
    await steps.run(() => this.waiters.close());
    await steps.run(() => this.unsubscribe?.());
    await steps.run(() => this.backend.close());
    await steps.run(() => this.unsubscribeErrors?.());
    this.events.removeAllListeners();
    this.parsed.clear();
    steps.finish('closing the store failed');
  }

  /** The scheduled job: write pending accesses, then sweep. */
  private async cleanup(): Promise<{ deleted: number; cutoff: number }> {
    await this.flushAccesses();
    const cutoff = this.clock.now();
    const { expired } = await this.sweep();
    this.logger.info({ job: 'session_cleanup', deleted: expired, cutoff }, 'session cleanup');
    return { deleted: expired, cutoff };
  }

  /** Writes accesses counted since the last write of each session. */
  async flushAccesses(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    let waits: Promise<unknown>[] = [];
    let n = 0;
    for (const [id, p] of batch) {
      try {
        const r = this.backend.touch(id, p.at, p.n, this.clock.now());
        if (r instanceof Promise) waits.push(r);
      } catch (err) {
        throw this.failed(err);
      }
      // Bounded slices, so a large flush never blocks the event loop for long.
      if (++n % SWEEP_BATCH === 0) {
        await this.call(() => Promise.all(waits));
        waits = [];
        await new Promise<void>((r) => setImmediate(r));
      }
    }
    await this.call(() => Promise.all(waits));
  }

  /** The session behind a record whose secret matches, with this access counted. */
  private checked(rec: SessionRecord | null, secret: string, now: number): Session | Promise<Session> | null {
    if (!verifySecretOrDummy(secret, rec?.secretHash) || !rec) return null;
    this.counters.validations++;
    return this.access(rec, now);
  }

  /** A record as callers see it, with accesses not yet written. */
  private view(rec: SessionRecord | null, now: number): Session | null {
    return rec ? this.seen(rec, now) : null;
  }

  /** A live record as callers see it, with accesses not yet written. */
  private seen(rec: SessionRecord, now: number): Session {
    return this.session(rec, now, this.pending.size === 0 ? 0 : (this.pending.get(rec.id)?.n ?? 0));
  }

  /** Counts an access: written at once when the touch interval has passed, else coalesced. */
  private access(rec: SessionRecord, now: number): Session | Promise<Session> {
    const p = this.pending.get(rec.id);
    const accesses = (p?.n ?? 0) + 1;
    if (now - rec.lastAccessedAt >= touchIntervalFor(this.opts, rec.idleTimeout)) {
      this.pending.delete(rec.id);
      return this.call(() => this.backend.touch(rec.id, now, accesses, now)).then((t) => this.session(t ?? rec, now));
    }
    if (p) {
      p.n = accesses;
      p.at = now;
    } else {
      this.pending.set(rec.id, { n: 1, at: now });
      if (this.pending.size >= FLUSH_AT) void this.flushAccesses().catch((err) => void this.failed(err, true));
    }
    return this.session(rec, now, accesses);
  }

  private async verified(token: string, now: number): Promise<SessionRecord | null> {
    const parsed = parseToken(token);
    if (!parsed) return null;
    const rec = await this.read(parsed.id, now);
    return verifySecretOrDummy(parsed.secret, rec?.secretHash) && rec ? rec : null;
  }

  /**
   * Ends the lease with this fencing number (what `lease.release()` does), for callers that
   * only know the number, such as the HTTP API. False when it is not the lease in force.
   */
  async unlock(id: string, fence: number): Promise<boolean> {
    this.assertOpen();
    checkId(id);
    if (!Number.isSafeInteger(fence) || fence < 0) throw errors.inputMustBe('fence', 'a whole number');
    const now = this.clock.now();
    const released = await this.call(() => this.backend.unlock(id, fence, now));
    this.waiters.notify(id);
    if (released) await this.leaseEvent('unlocked', id, 'released', now, fence);
    return released;
  }

  /** A lease event with the session's user, read only when someone listens (a lease call does not return it). */
  private async leaseEvent(event: 'locked' | 'unlocked', id: string, reason: string, at: number, fence: number): Promise<void> {
    if (this.events.listenerCount(event) === 0) return;
    let userId: string | null = null;
    try {
      userId = (await this.read(id, at))?.userId ?? null;
    } catch (err) {
      this.failed(err, true); // the lease itself succeeded: report, but do not fail the call
    }
    this.emit(event, { id, userId, reason, at, fence });
  }

  private revoked(rec: SessionRecord | null, now: number): boolean {
    if (!rec) return false;
    this.pending.delete(rec.id);
    this.reportEnded([{ id: rec.id, userId: rec.userId, reason: 'revoked' }], now);
    return true;
  }

  private newRecord(
    id: string,
    secretHash: string,
    userId: string | null,
    data: string,
    now: number,
    idle: number | undefined,
    abs: number | undefined,
  ): SessionRecord {
    return newRecord({
      id,
      secretHash,
      userId,
      data,
      now,
      idleTimeout: idle ?? this.opts.idleTimeout,
      absoluteTimeout: abs ?? this.opts.absoluteTimeout,
    });
  }

  /** The caps, one object for the store's life (the options do not change). */
  private policyOf: InsertPolicy | undefined;

  private policy(): InsertPolicy {
    this.policyOf ??= Object.freeze({ maxSessions: this.opts.maxSessions, maxSessionsPerUser: this.opts.maxSessionsPerUser });
    return this.policyOf;
  }

  private reportEnded(ended: Ended[], now: number): void {
    // Other processes' live sockets of these sessions are cut from this notice (lapse/socket.io).
    if (ended.length > 0) this.backend.publishEnded?.(ended);
    for (const e of ended) {
      this.pending.delete(e.id);
      const event = e.reason === 'idle' || e.reason === 'absolute' ? 'expired' : e.reason === 'evicted' ? 'evicted' : 'revoked';
      this.counters[event]++;
      this.emit(event, { id: e.id, userId: e.userId, reason: e.reason, at: now });
    }
  }

  private emit(event: Exclude<StoreEventName, 'error'>, payload: StoreEvent): void {
    if (this.events.listenerCount(event) === 0) return;
    try {
      this.events.emit(event, payload);
    } catch (err) {
      this.logger.error({ err, event }, 'a store event listener threw');
    }
  }

  /**
   * The one error-mapping path of the store. A LapseError passes as is; anything else a backend
   * threw becomes LAPSE_BACKEND_UNAVAILABLE, is counted and emitted as 'error'. A
   * backend-unavailable error marks write health either way. `unawaited`: no caller sees the
   * error (a release in withLock, a background flush, a side read), so it is emitted as 'error'
   * even when it is a LapseError, and logged when nobody listens.
   */
  private failed(err: unknown, unawaited = false): LapseError {
    const wrapped = !(err instanceof LapseError);
    const e = err instanceof LapseError ? err : backendError(err, `${this.backend.name} backend failed`);
    if (wrapped) this.counters.backendErrors++;
    if (e.code === 'LAPSE_BACKEND_UNAVAILABLE') this.writes.failed(e.message);
    if (wrapped || unawaited) {
      if (this.events.listenerCount('error') > 0) this.events.emit('error', e);
      else if (unawaited) this.logger.error({ err: e }, 'lapse store error');
    }
    return e;
  }

  /** backend.get without an extra promise when the backend answers synchronously; failures mapped by failed(). */
  private read(id: string, now: number): Awaitable<SessionRecord | null> {
    try {
      const r = this.backend.get(id, now);
      return r instanceof Promise ? r.catch(this.rejectFailed) : r;
    } catch (err) {
      throw this.failed(err);
    }
  }

  /** A backend's rejection as the LapseError callers get (one function, not a closure per call). */
  private readonly rejectFailed = (err: unknown): Promise<never> => Promise.reject(this.failed(err));

  /** A backend call whose failure is mapped by failed(). */
  private async call<T>(fn: () => Awaitable<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.failed(err);
    }
  }

  private assertOpen(): void {
    if (this.closing) throw errors.closed('the store');
  }
}
