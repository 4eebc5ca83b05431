import Fastify from 'fastify';
import { Registry } from 'prom-client';
import { io as connectClient } from 'socket.io-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { LapseError } from '../src/core/errors.js';
import { silentLogger } from '../src/util/logger.js';
import {
  type ConnectionTracker,
  mountLiveConnections,
  recommendedServerOptions,
  trackConnections,
  type TrackerOptions,
} from '../src/socket.io/index.js';
import { createStore, type SessionStore } from '../src/core/store.js';
import { ask, type ClientSocket, next, startServer, type TestServer } from './fixtures/socketio-harness.js';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(opts: TrackerOptions = {}): Promise<{ server: TestServer; tracker: ConnectionTracker }> {
  const server = await startServer();
  const tracker = trackConnections(server.io, { logger: silentLogger, ...opts });
  cleanups.push(() => server.close(), () => tracker.close());
  return { server, tracker };
}

function storeWith(clock?: ManualClock, idleTimeout = '30m'): SessionStore {
  const store = createStore({ clock, idleTimeout, sweepInterval: false, logger: silentLogger });
  cleanups.push(() => store.close());
  return store;
}

/** Records the client-side events of interest, in order. */
function recorder(c: ClientSocket): string[] {
  const seen: string[] = [];
  c.on('session_expiring', () => seen.push('session_expiring'));
  c.on('session_expired', (p: { reason: string }) => seen.push(`session_expired:${p.reason}`));
  c.on('disconnect', (reason) => seen.push(`disconnect:${reason}`));
  return seen;
}

describe('heartbeat', () => {
  it('answers the heartbeat event with heartbeat_ack { timestamp } and counts it as activity', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const { server, tracker } = await setup({ clock });
    const c = await server.connected();
    const sid = c.id as string;
    expect(tracker.get(sid)?.lastActivityAt).toBe(clock.now());

    await clock.advance('10s');
    const ack = next<{ timestamp: number }>(c, 'heartbeat_ack');
    c.emit('heartbeat');
    expect(await ack).toEqual({ timestamp: clock.now() });
    expect(tracker.get(sid)?.lastActivityAt).toBe(clock.now());

    // An ack callback gets the same payload.
    expect(await ask(c, 'heartbeat')).toEqual({ timestamp: clock.now() });
  });

  it('uses a custom heartbeat event name', async () => {
    const { server } = await setup({ heartbeatEvent: 'ping!' });
    const c = await server.connected();
    const ack = next<{ timestamp: number }>(c, 'heartbeat_ack');
    c.emit('ping!');
    expect(typeof (await ack).timestamp).toBe('number');
  });
});

describe('idle expiry', () => {
  it('warns warnBefore ahead, then sends session_expired and disconnects (fake time)', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const { server, tracker } = await setup({ clock, idleTimeout: '5m', warnBefore: '30s' });
    const events: string[] = [];
    tracker.on('expiring', (conn, expiresAt) => events.push(`expiring:${conn.sid}:${expiresAt}`));
    tracker.on('expired', (conn) => events.push(`expired:${conn.sid}`));
    tracker.on('disconnected', (conn, reason) => events.push(`disconnected:${conn.sid}:${reason}`));
    const c = await server.connected();
    const sid = c.id as string;
    const seen = recorder(c);
    const connectedAt = clock.now();

    await clock.advance(269_000);
    expect(tracker.get(sid)?.warned).toBe(false);
    const warning = next<{ expiresAt: number }>(c, 'session_expiring');
    await clock.advance('1s');
    expect(await warning).toEqual({ expiresAt: connectedAt + 300_000 });
    expect(tracker.get(sid)?.warned).toBe(true);

    const gone = next(c, 'disconnect');
    await clock.advance('30s');
    expect(await gone).toBe('io server disconnect');
    expect(seen).toEqual(['session_expiring', 'session_expired:idle', 'disconnect:io server disconnect']);
    expect(events).toEqual([`expiring:${sid}:${connectedAt + 300_000}`, `expired:${sid}`, `disconnected:${sid}:idle`]);
    expect(tracker.get(sid)).toBeNull();
    expect(tracker.sizes()).toEqual({ connections: 0, users: 0, rooms: 0, sessions: 0, deadlines: 0, watched: 0, timerArmed: false });
    expect(tracker.totals()).toMatchObject({ warned: 1, expired: 1 });
  });

  it('works on real timers with short durations (order of events only)', async () => {
    const { server, tracker } = await setup({ idleTimeout: 300, warnBefore: 100, sweepInterval: 100 });
    const c = await server.connected();
    const seen = recorder(c);
    await next(c, 'disconnect', 5000);
    expect(seen).toEqual(['session_expiring', 'session_expired:idle', 'disconnect:io server disconnect']);
    expect(tracker.stats().totalSessions).toBe(0);
  });

  it('any activity cancels a warning; the connection then lives a full timeout from that activity', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const { server, tracker } = await setup({ clock, idleTimeout: '5m', warnBefore: '30s' });
    const c = await server.connected();
    const sid = c.id as string;
    const seen = recorder(c);

    const warning = next(c, 'session_expiring');
    await clock.advance(270_000);
    await warning;
    expect(tracker.get(sid)?.warned).toBe(true);

    await clock.advance('10s');
    await ask(c, 'move', { x: 1 });
    const activeAt = clock.now();
    expect(tracker.get(sid)).toMatchObject({ warned: false, lastActivityAt: activeAt, expiresAt: activeAt + 300_000 });

    // Past the first deadline: still here, and no second warning yet.
    await clock.advance('1m');
    expect(tracker.get(sid)).not.toBeNull();
    expect(c.connected).toBe(true);
    expect(seen).toEqual(['session_expiring']);

    const second = next<{ expiresAt: number }>(c, 'session_expiring');
    await clock.set(activeAt + 270_000);
    expect(await second).toEqual({ expiresAt: activeAt + 300_000 });
    const gone = next(c, 'disconnect');
    await clock.set(activeAt + 300_000);
    await gone;
    expect(seen).toEqual(['session_expiring', 'session_expiring', 'session_expired:idle', 'disconnect:io server disconnect']);
  });

  it('idleTimeoutFor gives a per-room timeout, re-evaluated on join and leave', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const { server, tracker } = await setup({
      clock,
      idleTimeout: '5m',
      warnBefore: '30s',
      idleTimeoutFor: (conn) => (conn.rooms.includes('lobby') ? '1m' : undefined),
    });
    const inLobby = await server.connected();
    const elsewhere = await server.connected();
    const leaver = await server.connected();
    await ask(inLobby, 'join', 'lobby');
    await ask(elsewhere, 'join', 'match-1');
    await ask(leaver, 'join', 'lobby');
    expect(tracker.get(inLobby.id as string)?.idleTimeout).toBe(60_000);
    expect(tracker.get(leaver.id as string)?.idleTimeout).toBe(60_000);
    await ask(leaver, 'leave', 'lobby');
    expect(tracker.get(leaver.id as string)?.idleTimeout).toBe(300_000);
    expect(tracker.get(elsewhere.id as string)?.idleTimeout).toBe(300_000);

    const seenLobby = recorder(inLobby);
    const seenElsewhere = recorder(elsewhere);
    const seenLeaver = recorder(leaver);
    const gone = next(inLobby, 'disconnect');
    await clock.advance('30s');
    await clock.advance('30s');
    await gone;
    expect(seenLobby).toEqual(['session_expiring', 'session_expired:idle', 'disconnect:io server disconnect']);
    expect(seenElsewhere).toEqual([]);
    expect(seenLeaver).toEqual([]);
    expect(tracker.stats()).toEqual({ totalSessions: 2, uniqueUsers: 0, activeRooms: 1, sessionsPerRoom: { 'match-1': 1 } });
  });

  it('expireInactive() is the sweep: it handles only what is due', async () => {
    // A clock without timers of its own: the tracker's wake-up timer is a real one, far away.
    let t = 1_700_000_000_000;
    const { server, tracker } = await setup({ clock: { now: () => t }, idleTimeout: '5m', warnBefore: '30s' });
    await server.connected();
    await server.connected();
    expect(tracker.expireInactive()).toEqual({ warned: 0, expired: 0 });
    t += 271_000;
    expect(tracker.expireInactive()).toEqual({ warned: 2, expired: 0 });
    expect(tracker.expireInactive()).toEqual({ warned: 0, expired: 0 });
    t += 30_000;
    expect(tracker.expireInactive()).toEqual({ warned: 0, expired: 2 });
    expect(tracker.stats().totalSessions).toBe(0);
  });

  it('runs no job on a scheduler it is given: the deadline timer is the one sweep', async () => {
    const clock = new ManualClock(0);
    const store = storeWith(clock);
    const before = store.scheduler.list().map((j) => j.id);
    const { server, tracker } = await setup({ clock, scheduler: store.scheduler, sweepInterval: '1m', idleTimeout: '5m', warnBefore: 0 });
    await server.connected();
    expect(store.scheduler.list().map((j) => j.id)).toEqual(before);
    // The cut still comes on time, from the deadline timer alone.
    await clock.advance('5m');
    expect(tracker.stats().totalSessions).toBe(0);
    await tracker.close();
    expect(tracker.sizes().timerArmed).toBe(false);
  });
});

describe('sessions from the store', () => {
  it('authenticates auth.token or the cookie and records user and session', async () => {
    const store = storeWith();
    const { server, tracker } = await setup({ store, requireSession: true });
    const { token, session } = await store.create({ userId: 'alice' });
    const a = await server.connected({ auth: { token } });
    const b = await server.connected({ extraHeaders: { cookie: `theme=dark; lapse_session=${encodeURIComponent(token)}` } });
    expect(tracker.get(a.id as string)).toMatchObject({ userId: 'alice', sessionId: session.id, ip: '127.0.0.1' });
    expect(tracker.get(b.id as string)).toMatchObject({ userId: 'alice', sessionId: session.id });
    expect(tracker.byUser('alice').map((x) => x.sid).sort()).toEqual([a.id, b.id].sort());
    expect(tracker.stats()).toMatchObject({ totalSessions: 2, uniqueUsers: 1 });
  });

  it('requireSession refuses a missing or invalid token with LAPSE_UNAUTHORIZED and a clear data', async () => {
    const store = storeWith();
    const { server, tracker } = await setup({ store, requireSession: true });
    for (const auth of [{}, { token: 'nope' }, { token: 'AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB' }]) {
      const err = (await server.connected({ auth }).catch((e: unknown) => e)) as Error & { data?: { code: string; message: string } };
      expect(err.message).toBe('LAPSE_UNAUTHORIZED');
      expect(err.data?.code).toBe('LAPSE_UNAUTHORIZED');
      expect(err.data?.message).toMatch(/auth\.token/);
    }
    expect(tracker.stats().totalSessions).toBe(0);
  });

  it('without requireSession an unauthenticated client comes in anonymous', async () => {
    const store = storeWith();
    const { server, tracker } = await setup({ store });
    const c = await server.connected({ auth: { token: 'garbage' } });
    expect(tracker.get(c.id as string)).toMatchObject({ userId: null, sessionId: null });
  });

  it('a failing backend refuses the handshake with LAPSE_BACKEND_UNAVAILABLE, never as anonymous', async () => {
    const store = storeWith();
    const { server, tracker } = await setup({ store });
    const { token } = await store.create({ userId: 'bob' });
    vi.spyOn(store.backend, 'get').mockImplementation(() => {
      throw new Error('disk on fire');
    });
    const err = (await server.connected({ auth: { token } }).catch((e: unknown) => e)) as Error & { data?: { code: string } };
    expect(err.message).toBe('LAPSE_BACKEND_UNAVAILABLE');
    expect(err.data?.code).toBe('LAPSE_BACKEND_UNAVAILABLE');
    expect(tracker.stats().totalSessions).toBe(0);
  });

  it('revoking the session disconnects its sockets, and only those', async () => {
    const store = storeWith();
    const { server, tracker } = await setup({ store, requireSession: true });
    const alice = await store.create({ userId: 'alice' });
    const bob = await store.create({ userId: 'bob' });
    const a1 = await server.connected({ auth: { token: alice.token } });
    const a2 = await server.connected({ auth: { token: alice.token } });
    const b = await server.connected({ auth: { token: bob.token } });
    const reasons: string[] = [];
    tracker.on('disconnected', (conn, reason) => reasons.push(`${conn.userId}:${reason}`));
    const seen1 = recorder(a1);
    const seen2 = recorder(a2);
    const gone = Promise.all([next(a1, 'disconnect'), next(a2, 'disconnect')]);
    expect(await store.revoke(alice.token)).toBe(true);
    await gone;
    expect(seen1).toEqual(['session_expired:revoked', 'disconnect:io server disconnect']);
    expect(seen2).toEqual(['session_expired:revoked', 'disconnect:io server disconnect']);
    expect(reasons).toEqual(['alice:revoked', 'alice:revoked']);
    expect(b.connected).toBe(true);
    expect(tracker.stats()).toMatchObject({ totalSessions: 1, uniqueUsers: 1 });
    expect(tracker.byUser('alice')).toEqual([]);

    // revokeUser ends the rest.
    const goneB = next(b, 'disconnect');
    await store.revokeUser('bob');
    await goneB;
    expect(tracker.sizes()).toMatchObject({ connections: 0, users: 0, sessions: 0 });
  });

  it('keeps the session alive while active, at most one store.touch per touch interval', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = storeWith(clock, '10m'); // touch interval: 1 minute
    const { server } = await setup({ store, clock, idleTimeout: '30m' });
    const { token, session } = await store.create({ userId: 'carol' });
    const touch = vi.spyOn(store, 'touch');
    const c = await server.connected({ auth: { token } });
    for (let i = 0; i < 10; i++) await ask(c, 'move', i);
    expect(touch).not.toHaveBeenCalled();

    await clock.advance('61s');
    for (let i = 0; i < 10; i++) await ask(c, 'move', i);
    expect(touch).toHaveBeenCalledTimes(1);
    expect(touch).toHaveBeenCalledWith(session.id);
    await touch.mock.results[0]?.value;
    expect((await store.get(session.id))?.lastAccessedAt).toBe(clock.now());

    // 9 minutes of activity, one event a second: the session slid, with one touch a minute.
    for (let s = 0; s < 540; s += 30) {
      await clock.advance('30s');
      await ask(c, 'move', s);
    }
    expect(touch.mock.calls.length).toBe(10);
    expect((await store.get(session.id))?.expiresAt).toBeGreaterThan(session.expiresAt + 9 * 60_000);
  });

  it('a session found gone on touch (no event heard) ends its sockets', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = storeWith(clock, '10m');
    const { server, tracker } = await setup({ store, clock, idleTimeout: '30m' });
    const { token, session } = await store.create({ userId: 'dave' });
    const c = await server.connected({ auth: { token } });
    // Gone behind the store's back, as when another node deletes it: no local event.
    await store.backend.remove(session.id, clock.now(), { force: true });
    await clock.advance('61s');
    const seen = recorder(c);
    const gone = next(c, 'disconnect');
    c.emit('move', 1);
    await gone;
    expect(seen).toEqual(['session_expired:expired', 'disconnect:io server disconnect']);
    expect(tracker.stats().totalSessions).toBe(0);
  });

  it('a silent socket is cut when its session expires, with no sweep and no event; a session slid elsewhere keeps it', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = storeWith(clock, '10m');
    const { server, tracker } = await setup({ store, clock, idleTimeout: '1h' });
    const kept = await store.create({ userId: 'kim' });
    const lost = await store.create({ userId: 'lou' });
    const k = await server.connected({ auth: { token: kept.token } });
    const l = await server.connected({ auth: { token: lost.token } });
    expect(tracker.sizes().watched).toBe(2);
    const seenK = recorder(k);
    const seenL = recorder(l);
    // Another client of kim's session (an HTTP validate, say) slides it; lou's runs out.
    await clock.advance('5m');
    await store.touch(kept.session.id);
    const gone = next(l, 'disconnect');
    await clock.advance('5m');
    await gone;
    expect(seenL).toEqual(['session_expired:expired', 'disconnect:io server disconnect']);
    expect(seenK).toEqual([]);
    expect(tracker.get(k.id as string)).not.toBeNull();
    expect(tracker.sizes()).toMatchObject({ connections: 1, watched: 1 });
    // The check moved to kim's new expiry: it is cut then.
    const goneK = next(k, 'disconnect');
    await clock.advance('5m');
    await goneK;
    expect(seenK).toEqual(['session_expired:expired', 'disconnect:io server disconnect']);
    expect(tracker.sizes()).toMatchObject({ connections: 0, watched: 0, sessions: 0 });
  });

  it('counts failed handshakes in the failure limit and refuses them with LAPSE_RATE_LIMITED once over', async () => {
    const store = storeWith();
    const calls: string[] = [];
    let failures = 0;
    const failureLimit = {
      retryAfter: (_address: string, id: string | null) => (id === 'blocked' ? 1000 : 0),
      fail: (address: string, id: string | null) => {
        calls.push(`${address}:${id}`);
        return ++failures > 2 ? 1000 : 0;
      },
    };
    const { server } = await setup({ store, requireSession: true, failureLimit });
    const refused = (auth?: Record<string, unknown>) => server.connected({ auth }).then(() => new Error('accepted'), (err: Error) => err);
    const { token, session } = await store.create({ userId: 'ned' });
    const wrong = `${session.id}.${'x'.repeat(43)}`;
    expect((await refused({ token: wrong })).message).toBe('LAPSE_UNAUTHORIZED');
    expect((await refused()).message).toBe('LAPSE_UNAUTHORIZED');
    expect((await refused({ token: wrong })).message).toBe('LAPSE_RATE_LIMITED');
    expect(calls.map((c) => c.split(':').slice(-1)[0])).toEqual([session.id, 'null', session.id]);
    // A valid token is validated whatever the address did.
    (await server.connected({ auth: { token } })).disconnect();
    expect(failures).toBe(3);
  });

  it('a rotated session ends its sockets with reason rotated (the client reconnects with the new token)', async () => {
    const store = storeWith();
    const { server, tracker } = await setup({ store, requireSession: true });
    const { token } = await store.create({ userId: 'erin' });
    const c = await server.connected({ auth: { token } });
    const seen = recorder(c);
    const gone = next(c, 'disconnect');
    const rotated = await store.rotate(token);
    await gone;
    expect(seen).toEqual(['session_expired:rotated', 'disconnect:io server disconnect']);
    expect(tracker.sizes()).toMatchObject({ connections: 0, sessions: 0, watched: 0 });
    const again = await server.connected({ auth: { token: rotated.token } });
    expect(tracker.get(again.id as string)?.sessionId).toBe(rotated.session.id);
  });
});

describe('lifecycle and options', () => {
  it('checks options up front', () => {
    const fake = {} as never;
    expect(() => trackConnections(fake, { idleTimout: '5m' } as TrackerOptions)).toThrow(LapseError);
    expect(() => trackConnections(fake, { requireSession: true })).toThrow(/store/);
    expect(() => trackConnections(fake, { idleTimeout: 'soon' })).toThrow(/idleTimeout/);
  });

  it('close() removes every listener and timer, leaves sockets connected, and is idempotent', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const server = await startServer();
    cleanups.push(() => server.close());
    const nsp = server.io.of('/');
    const before = { connection: nsp.listenerCount('connection'), join: nsp.adapter.listenerCount('join-room') };
    const tracker = trackConnections(server.io, { clock, logger: silentLogger });
    const c = await server.connected();
    await ask(c, 'join', 'room-1');
    const socket = nsp.sockets.get(c.id as string);
    expect(socket?.listenersAny()).toHaveLength(1);
    expect(clock.pendingTimers()).toBeGreaterThan(0);

    await Promise.all([tracker.close(), tracker.close()]);
    await tracker.close();
    expect(nsp.listenerCount('connection')).toBe(before.connection);
    expect(nsp.adapter.listenerCount('join-room')).toBe(before.join);
    expect(socket?.listenersAny()).toHaveLength(0);
    expect(socket?.listeners('disconnecting')).toHaveLength(0);
    expect(clock.pendingTimers()).toBe(0);
    expect(c.connected).toBe(true);
    expect(tracker.stats().totalSessions).toBe(0);
    // New connections are no longer tracked.
    await server.connected();
    expect(tracker.stats().totalSessions).toBe(0);
  });

  it('adopts sockets connected before it started', async () => {
    const server = await startServer();
    cleanups.push(() => server.close());
    const c = await server.connected();
    await ask(c, 'join', 'early');
    const tracker = trackConnections(server.io, { logger: silentLogger });
    cleanups.push(() => tracker.close());
    expect(tracker.get(c.id as string)?.rooms).toEqual(['early']);
  });

  it('exposes prom-client gauges read at scrape time', async () => {
    const { server, tracker } = await setup();
    const registry = new Registry();
    tracker.registerMetrics(registry);
    const a = await server.connected();
    const b = await server.connected();
    await ask(a, 'join', 'r1');
    await ask(b, 'join', 'r1');
    await ask(b, 'join', 'r2');
    const text = await registry.metrics();
    expect(text).toMatch(/^lapse_socketio_connections 2$/m);
    expect(text).toMatch(/^lapse_socketio_rooms 2$/m);
    expect(text).toMatch(/^lapse_socketio_room_connections\{room="r1"\} 2$/m);
    expect(text).toMatch(/^lapse_socketio_room_connections\{room="r2"\} 1$/m);
    expect(text).toMatch(/^lapse_socketio_connected_total 2$/m);
  });

  it('recommendedServerOptions turns recovery on and keeps middlewares on recovery', () => {
    expect(recommendedServerOptions).toEqual({
      pingInterval: 25_000,
      pingTimeout: 20_000,
      maxHttpBufferSize: 1e6,
      connectionStateRecovery: { maxDisconnectionDuration: 120_000, skipMiddlewares: false },
    });
  });
});

describe('mountLiveConnections', () => {
  it('mounts on a server someone else owns (Fastify) at /socket.io/, and closes without closing it', async () => {
    const store = storeWith();
    const app = Fastify();
    const live = mountLiveConnections(app.server, { store, requireSession: true, logger: silentLogger });
    app.get('/health/connections', () => live.tracker.stats());
    await app.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => app.close(), () => live.close());
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    const { token } = await store.create({ userId: 'fay' });
    const c = connectClient(url, { path: '/socket.io/', auth: { token }, reconnection: false, transports: ['websocket'] });
    cleanups.push(() => c.disconnect());
    await next(c, 'connect');
    const res = await fetch(`${url}/health/connections`);
    expect(await res.json()).toEqual({ totalSessions: 1, uniqueUsers: 1, activeRooms: 0, sessionsPerRoom: {} });

    const gone = next(c, 'disconnect');
    await Promise.all([live.close(), live.close()]);
    await gone;
    // The HTTP server is still the app's and still answers.
    expect((await fetch(`${url}/health/connections`)).status).toBe(200);
  });
});
