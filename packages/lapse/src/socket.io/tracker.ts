import { EventEmitter } from 'node:events';
import type { Namespace, Server, Socket } from 'socket.io';
import type { Registry } from 'prom-client';
import { type TimerClock, timerClock } from '../core/clock.js';
import { parsePositiveDuration } from '../core/duration.js';
import { CleanupSteps } from '../core/cleanup.js';
import { backendError } from '../core/errors.js';
import { defaultLogger, type Logger } from '../util/logger.js';
import type { SessionStore, StoreEvent } from '../core/store.js';
import { sessionMiddleware } from './auth.js';
import { type Connection, type ConnRecord, type LapseSocketData, roomsOf, toConnection } from './connection.js';
import { DeadlineIndex } from './deadlines.js';
import { sendDirect } from './send.js';
import { SessionWatch } from './session-watch.js';
import type { Ended } from '../core/session.js';
import { Indexes } from './indexes.js';
import { registerTrackerMetrics, type MetricsOptions } from './metrics.js';
import { resolveTrackerOptions, type ResolvedTrackerOptions, type TrackerOptions } from './options.js';
import type { PresenceEntry, PresenceRegistry, PresenceSource } from './presence.js';

/** What `tracker.stats()` returns (and `/health/connections` serves). */
export interface TrackerStats {
  /** Live connections. */
  totalSessions: number;
  /** Users with at least one live connection. */
  uniqueUsers: number;
  /** Rooms with at least one live connection (own-id rooms excluded). */
  activeRooms: number;
  sessionsPerRoom: Record<string, number>;
}

/** Listeners of the tracker's events. */
export interface TrackerEvents {
  connected: (conn: Connection) => void;
  /** `reason` is Socket.IO's ('transport close', 'ping timeout'…) or the tracker's ('idle', 'revoked', 'rotated', 'expired', 'evicted'). */
  disconnected: (conn: Connection, reason: string) => void;
  expiring: (conn: Connection, expiresAt: number) => void;
  expired: (conn: Connection) => void;
}

/** Events the tracker sends to clients. */
export const CLIENT_EVENTS = {
  expiring: 'session_expiring',
  expired: 'session_expired',
  heartbeatAck: 'heartbeat_ack',
} as const;

/** Payload of `session_expired`: 'idle' = this connection was idle (the session may still be valid); otherwise the session ended. */
export interface SessionExpiredPayload {
  reason: 'idle' | 'revoked' | 'rotated' | 'expired' | 'evicted';
}

/** Why a session ended, as the socket is told. */
function socketReason(reason: Ended['reason']): SessionExpiredPayload['reason'] {
  return reason === 'idle' || reason === 'absolute' ? 'expired' : reason;
}

/** How soon a session check that failed (backend down) is tried again. */
const RECHECK_MS = 1000;

/** Sizes of every internal structure, for leak checks and diagnostics. */
export interface TrackerSizes {
  connections: number;
  users: number;
  rooms: number;
  sessions: number;
  deadlines: number;
  /** Sessions whose expiry is being watched. */
  watched: number;
  timerArmed: boolean;
}


/**
 * Tracks the live connections of a Socket.IO server (its main namespace, or the namespace
 * given): who is connected, in which rooms, and when each goes idle.
 * @example
 * const io = new Server(httpServer, { ...recommendedServerOptions });
 * const tracker = trackConnections(io, { store, requireSession: true, idleTimeout: '10m' });
 * tracker.on('expired', (conn) => log.info({ sid: conn.sid }, 'idle player cut'));
 */
export function trackConnections(io: Server | Namespace, options: TrackerOptions = {}): ConnectionTracker {
  return new ConnectionTracker(io, options);
}

/** The live-connection tracker; see trackConnections. */
export class ConnectionTracker implements PresenceSource {
  private readonly nsp: Namespace;
  private readonly opts: ResolvedTrackerOptions;
  private readonly clock: TimerClock;
  private readonly logger: Logger;
  private readonly store: SessionStore | undefined;
  private readonly registry: PresenceRegistry | undefined;
  private readonly idleTimeoutFor: TrackerOptions['idleTimeoutFor'];
  private readonly records = new Map<string, ConnRecord>();
  private readonly idx = new Indexes();
  private readonly deadlines: DeadlineIndex<ConnRecord>;
  private readonly watch: SessionWatch;
  /** Sockets whose handshake this tracker authenticated (socket.data alone could come from a recovery). */
  private readonly verified = new WeakSet<Socket>();
  private readonly events = new EventEmitter();
  private readonly unhook: (() => void)[] = [];
  private closing: Promise<void> | undefined;
  private readonly counters = { connected: 0, disconnected: 0, warned: 0, expired: 0 };

  // Shared by every socket (called with `this` = the socket), so a connection costs no closures.
  private readonly onAny: (...args: unknown[]) => void;
  private readonly onDisconnecting: (reason: string) => void;

  constructor(io: Server | Namespace, options: TrackerOptions = {}) {
    this.opts = resolveTrackerOptions(options);
    this.nsp = typeof (io as Server).of === 'function' ? (io as Server).of('/') : (io as Namespace);
    this.clock = timerClock(options.clock);
    this.logger = options.logger ?? defaultLogger();
    this.store = options.store;
    this.registry = options.registry;
    this.idleTimeoutFor = options.idleTimeoutFor;
    const tick = Math.min(1000, Math.max(10, Math.floor(this.opts.idleTimeout / 100)));
    this.deadlines = new DeadlineIndex(this.clock, tick, (now) => this.process(now));
    this.watch = new SessionWatch(this.clock, 10, (id) => this.checkSession(id));

    this.onAny = this.anyHandler();
    this.onDisconnecting = this.disconnectingHandler();
    if (this.store) this.attachStore(this.store, options.failureLimit);
    this.hook(this.nsp, 'connection', (socket: Socket) => this.add(socket));
    this.hook(this.nsp.adapter, 'join-room', (room: string, sid: string) => this.joined(room, sid));
    this.hook(this.nsp.adapter, 'leave-room', (room: string, sid: string) => this.left(room, sid));
    this.registry?.attach(this);
    // Sockets that connected before the tracker existed are adopted (anonymous unless socket.data says otherwise).
    for (const socket of this.nsp.sockets.values()) this.add(socket);
  }

  /** Handles any client event of a socket (called with `this` = the socket): activity, and the heartbeat's answer. */
  private anyHandler(): (...args: unknown[]) => void {
    const tracker = this;
    const heartbeat = this.opts.heartbeatEvent;
    return function (this: Socket, event: unknown, ...args: unknown[]) {
      tracker.activity(this);
      // The heartbeat is answered here rather than by a listener of its own: one listener less per socket.
      if (event !== heartbeat) return;
      const payload = { timestamp: tracker.clock.now() };
      sendDirect(this, CLIENT_EVENTS.heartbeatAck, payload);
      const ack = args[args.length - 1];
      if (typeof ack === 'function') ack(payload);
    };
  }

  /** Handles a socket's `disconnecting` (called with `this` = the socket). */
  private disconnectingHandler(): (reason: string) => void {
    const tracker = this;
    return function (this: Socket, reason: string) {
      const rec = tracker.records.get(this.id);
      if (rec?.socket === this) tracker.remove(rec, rec.ending ?? reason);
    };
  }

  /** With a store: the handshake check, and cuts when the store ends sessions. */
  private attachStore(store: SessionStore, failureLimit: TrackerOptions['failureLimit']): void {
    this.nsp.use(
      sessionMiddleware({
        store,
        requireSession: this.opts.requireSession,
        cookieName: this.opts.cookieName,
        touchInterval: this.opts.touchInterval,
        failureLimit,
        verified: this.verified,
        isClosed: () => this.closing !== undefined,
      }),
    );
    this.listenToStore(store);
  }

  /** Counts from the indexes; no scan of connections. */
  stats(): TrackerStats {
    return {
      totalSessions: this.records.size,
      uniqueUsers: this.idx.users.size,
      activeRooms: this.idx.rooms.size,
      sessionsPerRoom: Object.fromEntries(this.idx.rooms.counts()),
    };
  }

  /** The connection with this socket id, or null. */
  get(sid: string): Connection | null {
    const rec = this.records.get(sid);
    return rec ? toConnection(rec) : null;
  }

  /** The user's live connections. */
  byUser(userId: string): Connection[] {
    return this.views(this.idx.users.get(userId));
  }

  /** The live connections in a room. */
  inRoom(room: string): Connection[] {
    return this.views(this.idx.rooms.get(room));
  }

  /** How many live connections a user has (O(1)). */
  countUser(userId: string): number {
    return this.idx.users.count(userId);
  }

  /** How many live connections are in a room (O(1)). */
  countRoom(room: string): number {
    return this.idx.rooms.count(room);
  }

  /**
   * Warns and cuts the connections whose deadline has passed, looking only at those (the
   * deadline index is ordered). The deadline timer runs it by itself; a call runs it now.
   */
  expireInactive(): { warned: number; expired: number } {
    if (this.closing) return { warned: 0, expired: 0 };
    const result = this.process(this.clock.now());
    this.deadlines.arm();
    return result;
  }

  /** Subscribes to 'connected' 'disconnected' 'expiring' 'expired'. */
  on<E extends keyof TrackerEvents>(event: E, listener: TrackerEvents[E]): this {
    this.events.on(event, listener);
    return this;
  }

  /** Removes a listener added with on(). */
  off<E extends keyof TrackerEvents>(event: E, listener: TrackerEvents[E]): this {
    this.events.off(event, listener);
    return this;
  }

  /**
   * Adds prom-client gauges (connections, users, rooms, per-room sizes for the largest rooms)
   * to a registry; they are read at scrape time, so they cost nothing between scrapes.
   */
  registerMetrics(registry: Registry, opts?: MetricsOptions): void {
    registerTrackerMetrics(registry, this, opts);
  }

  /** Sizes of the internal structures (all zero and no timer once every socket is gone). */
  sizes(): TrackerSizes {
    return {
      connections: this.records.size,
      users: this.idx.users.size,
      rooms: this.idx.rooms.size,
      sessions: this.idx.sessions.size,
      deadlines: this.deadlines.size,
      watched: this.watch.size,
      timerArmed: this.deadlines.armed,
    };
  }

  /** Running totals since the tracker started. */
  totals(): { connected: number; disconnected: number; warned: number; expired: number } {
    return { ...this.counters };
  }

  /** The live connections as a registry copies them (PresenceSource). */
  *entries(): IterableIterator<PresenceEntry> {
    for (const r of this.records.values()) yield { sid: r.sid, userId: r.userId, rooms: roomsOf(r) };
  }

  /**
   * Stops tracking: removes every listener, clears the timers, detaches the registry.
   * Sockets stay connected. Safe to call twice.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- internals ----

  private add(socket: Socket): void {
    if (this.closing || !socket.connected) return;
    const old = this.records.get(socket.id);
    // One record per sid: a recovered socket replaces whatever is left of its previous transport.
    if (old) this.remove(old, 'replaced');
    const now = this.clock.now();
    socket.data ??= {};
    const data = socket.data as { lapse?: LapseSocketData; userId?: unknown };
    const anonymous: LapseSocketData = { sessionId: null, userId: typeof data.userId === 'string' ? data.userId : null };
    // With a store, only an identity this tracker's handshake check set counts: a recovery
    // that skipped middlewares, or a socket adopted from before the tracker, proved nothing.
    const proven = this.store ? (this.verified.has(socket) ? data.lapse : undefined) : data.lapse;
    if (this.store && !proven) {
      if (this.opts.requireSession) {
        this.logger.warn({ sid: socket.id }, 'socket without an authenticated handshake disconnected');
        socket.disconnect(true);
        return;
      }
      delete data.lapse;
    }
    const lapse = proven ?? anonymous;
    lapse.connectedAt ??= now;
    // Kept in socket.data (and so across a recovery) only when it carries a session or recovery is on.
    if (data.lapse === undefined && (lapse.sessionId !== null || this.nsp.server._opts.connectionStateRecovery)) data.lapse = lapse;
    const rec: ConnRecord = {
      sid: socket.id,
      socket,
      userId: lapse.userId,
      sessionId: lapse.sessionId,
      ip: socket.handshake.address,
      connectedAt: lapse.connectedAt,
      lastActivityAt: now,
      timeout: this.opts.idleTimeout,
      warned: false,
      // The handshake's validate just counted an access.
      touchedAt: now,
      touchEvery: lapse.touchEvery ?? Number.POSITIVE_INFINITY,
      ending: null,
      due: 0,
      hi: -1,
    };
    this.records.set(rec.sid, rec);
    this.counters.connected++;
    if (rec.userId !== null) this.idx.users.add(rec.userId, rec.sid);
    if (rec.sessionId !== null) {
      this.idx.sessions.add(rec.sessionId, rec.sid);
      if (this.store && lapse.expiresAt !== undefined) this.watch.watch(rec.sessionId, lapse.expiresAt);
    }
    for (const room of roomsOf(rec)) this.idx.rooms.add(room, rec.sid);
    rec.timeout = this.timeoutOf(rec);
    this.deadlines.add(rec, this.nextCheck(rec));
    socket.onAny(this.onAny);
    socket.on('disconnecting', this.onDisconnecting);
    if (this.registry) {
      this.registry.connected(rec.sid, rec.userId);
      for (const room of roomsOf(rec)) this.registry.joined(rec.sid, room);
    }
    this.logger.debug({ sid: rec.sid, userId: rec.userId, recovered: socket.recovered }, 'socket connected');
    this.emit('connected', rec);
  }

  private remove(rec: ConnRecord, reason: string): void {
    if (this.records.get(rec.sid) !== rec) return;
    this.records.delete(rec.sid);
    this.counters.disconnected++;
    this.deadlines.remove(rec);
    if (rec.userId !== null) this.idx.users.delete(rec.userId, rec.sid);
    if (rec.sessionId !== null) {
      this.idx.sessions.delete(rec.sessionId, rec.sid);
      if (this.idx.sessions.count(rec.sessionId) === 0) this.watch.unwatch(rec.sessionId);
    }
    // Read before Socket.IO's cleanup ('disconnecting'); a socket already cleaned up has left them one by one.
    const rooms = [...roomsOf(rec)];
    for (const room of rooms) this.idx.rooms.delete(room, rec.sid);
    this.unlisten(rec.socket);
    if (this.registry) {
      for (const room of rooms) this.registry.left(rec.sid, room);
      this.registry.disconnected(rec.sid);
    }
    this.logger.debug({ sid: rec.sid, userId: rec.userId, reason }, 'socket gone');
    this.emit('disconnected', rec, reason);
  }

  private unlisten(socket: Socket): void {
    socket.offAny(this.onAny);
    socket.off('disconnecting', this.onDisconnecting);
  }

  /** Any client event: O(1), the deadline itself moves lazily when it comes up. */
  private activity(socket: Socket): void {
    const rec = this.records.get(socket.id);
    if (!rec || rec.socket !== socket) return;
    const now = this.clock.now();
    rec.lastActivityAt = now;
    rec.warned = false;
    if (rec.sessionId !== null && now - rec.touchedAt >= rec.touchEvery) {
      rec.touchedAt = now;
      this.keepAlive(rec.sessionId);
    }
  }

  /** Slides the durable session; a session found gone ends its sockets. */
  private keepAlive(sessionId: string): void {
    const store = this.store;
    if (!store || store.closed) return;
    store.touch(sessionId).then(
      (session) => {
        if (session === null) this.endSession(sessionId, 'expired');
        else if (this.idx.sessions.count(sessionId) > 0) this.watch.watch(sessionId, session.expiresAt);
      },
      (err: unknown) => this.logger.warn({ err: backendError(err), sessionId }, 'could not keep the session of a live socket alive'),
    );
  }

  private joined(room: string, sid: string): void {
    if (room === sid) return;
    const rec = this.records.get(sid);
    if (!rec || !this.idx.rooms.add(room, sid)) return;
    this.registry?.joined(sid, room);
    this.retime(rec);
  }

  private left(room: string, sid: string): void {
    const rec = this.records.get(sid);
    if (!rec || !this.idx.rooms.delete(room, sid)) return;
    this.registry?.left(sid, room);
    this.retime(rec);
  }

  /** Re-evaluates idleTimeoutFor after a join or leave. */
  private retime(rec: ConnRecord): void {
    if (!this.idleTimeoutFor) return;
    const timeout = this.timeoutOf(rec);
    if (timeout === rec.timeout) return;
    rec.timeout = timeout;
    this.deadlines.move(rec, this.nextCheck(rec));
  }

  private timeoutOf(rec: ConnRecord): number {
    if (!this.idleTimeoutFor) return this.opts.idleTimeout;
    try {
      const t = this.idleTimeoutFor(toConnection(rec), rec.socket);
      return t === undefined ? this.opts.idleTimeout : parsePositiveDuration(t, 'idleTimeoutFor()');
    } catch (err) {
      this.logger.error({ err, sid: rec.sid }, 'idleTimeoutFor threw; the default idleTimeout applies');
      return this.opts.idleTimeout;
    }
  }

  /** The warning lead for a timeout: warnBefore, but at most half the timeout. */
  private lead(timeout: number): number {
    return Math.min(this.opts.warnBefore, Math.floor(timeout / 2));
  }

  /** When the tracker must next look at a connection: its warning time, or its deadline once warned. */
  private nextCheck(rec: ConnRecord): number {
    const deadline = rec.lastActivityAt + rec.timeout;
    return rec.warned ? deadline : deadline - this.lead(rec.timeout);
  }

  /** Handles every connection whose check time has come, earliest first; each is cut, warned or moved later. */
  private process(now: number): { warned: number; expired: number } {
    let warned = 0;
    let expired = 0;
    for (let rec = this.deadlines.due(now); rec; rec = this.deadlines.due(now)) {
      const deadline = rec.lastActivityAt + rec.timeout;
      if (now >= deadline) {
        this.expire(rec);
        expired++;
        continue;
      }
      const lead = this.lead(rec.timeout);
      if (!rec.warned && lead > 0 && now >= deadline - lead) {
        this.warn(rec, deadline);
        warned++;
      }
      // Strictly later than now: the loop always advances.
      this.deadlines.move(rec, this.nextCheck(rec));
    }
    return { warned, expired };
  }

  private warn(rec: ConnRecord, expiresAt: number): void {
    rec.warned = true;
    this.counters.warned++;
    sendDirect(rec.socket, CLIENT_EVENTS.expiring, { expiresAt });
    if (this.events.listenerCount('expiring') > 0) this.safeEmit('expiring', toConnection(rec), expiresAt);
  }

  private expire(rec: ConnRecord): void {
    this.counters.expired++;
    this.emit('expired', rec);
    this.cut(rec, 'idle');
  }

  /** Tells the client why, then disconnects it (not recoverable: the server ended it). */
  private cut(rec: ConnRecord, reason: SessionExpiredPayload['reason']): void {
    rec.ending = reason;
    const payload: SessionExpiredPayload = { reason };
    sendDirect(rec.socket, CLIENT_EVENTS.expired, payload);
    rec.socket.disconnect(true);
    // disconnect() removes the record through 'disconnecting'; a socket already gone does not.
    this.remove(rec, reason);
  }

  private endSession(sessionId: string, reason: SessionExpiredPayload['reason']): void {
    if (this.closing) return;
    for (const sid of [...this.idx.sessions.get(sessionId)]) {
      const rec = this.records.get(sid);
      if (rec) this.cut(rec, reason);
    }
  }

  /**
   * Sessions that end in this process arrive as store events; with a backend that tells
   * every process (Redis pub/sub), those of other nodes arrive through onEnded too. A
   * session heard of twice is ended once: the second time it has no sockets left.
   */
  private listenToStore(store: SessionStore): void {
    const ended = (reason: SessionExpiredPayload['reason']) => (e: StoreEvent) => this.endSession(e.id, reason);
    const onRevoked = ended('revoked');
    const onExpired = ended('expired');
    const onEvicted = ended('evicted');
    const onRotated = ended('rotated');
    store.on('revoked', onRevoked).on('expired', onExpired).on('evicted', onEvicted).on('rotated', onRotated);
    this.unhook.push(() => {
      store.off('revoked', onRevoked).off('expired', onExpired).off('evicted', onEvicted).off('rotated', onRotated);
    });
    const off = store.backend.onEnded?.((list) => {
      for (const e of list) this.endSession(e.id, socketReason(e.reason));
    });
    if (off) this.unhook.push(off);
  }

  /** A watched session's expiry time has come: still there (slid elsewhere), or gone. */
  private checkSession(sessionId: string): void {
    const store = this.store;
    if (!store || store.closed || this.closing) return;
    store.get(sessionId).then(
      (session) => {
        if (session === null) this.endSession(sessionId, 'expired');
        else if (this.idx.sessions.count(sessionId) > 0) this.watch.watch(sessionId, Math.max(session.expiresAt, this.clock.now() + 1));
      },
      (err: unknown) => {
        this.logger.warn({ err: backendError(err), sessionId }, 'could not check the session of a live socket; retrying');
        if (this.idx.sessions.count(sessionId) > 0) this.watch.watch(sessionId, this.clock.now() + RECHECK_MS);
      },
    );
  }

  private hook(target: EventEmitter | Namespace, event: string, fn: (...args: never[]) => void): void {
    const emitter = target as EventEmitter;
    const listener = fn as (...args: unknown[]) => void;
    emitter.on(event, listener);
    this.unhook.push(() => emitter.off(event, listener));
  }

  private views(sids: ReadonlySet<string>): Connection[] {
    const out: Connection[] = [];
    for (const sid of sids) {
      const rec = this.records.get(sid);
      if (rec) out.push(toConnection(rec));
    }
    return out;
  }

  private emit(event: 'connected' | 'expired', rec: ConnRecord): void;
  private emit(event: 'disconnected', rec: ConnRecord, reason: string): void;
  private emit(event: 'connected' | 'expired' | 'disconnected', rec: ConnRecord, reason?: string): void {
    if (this.events.listenerCount(event) === 0) return;
    this.safeEmit(event, toConnection(rec), reason);
  }

  private safeEmit(event: keyof TrackerEvents, ...args: unknown[]): void {
    try {
      this.events.emit(event, ...args);
    } catch (err) {
      this.logger.error({ err, event }, 'a tracker event listener threw');
    }
  }

  private async shutdown(): Promise<void> {
    const steps = new CleanupSteps();
    for (const off of this.unhook) await steps.run(off);
    await steps.run(() => this.deadlines.close());
    await steps.run(() => this.watch.close());
    for (const rec of this.records.values()) await steps.run(() => this.unlisten(rec.socket));
    await steps.run(() => this.registry?.detach());
    this.records.clear();
    this.idx.clear();
    this.events.removeAllListeners();
    steps.finish('closing the connection tracker failed');
  }
}
