import { afterEach, expect, it } from 'vitest';
import { silentLogger } from '../src/util/logger.js';
import { type ConnectionTracker, recommendedServerOptions, trackConnections } from '../src/socket.io/index.js';
import { createStore, type SessionStore } from '../src/core/store.js';
import { ask, type ClientSocket, next, startServer, type TestServer } from './fixtures/socketio-harness.js';

const RECONNECT = { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 };

let server: TestServer;
let tracker: ConnectionTracker;
let store: SessionStore;

afterEach(async () => {
  await tracker?.close();
  await server?.close();
  await store?.close();
});

async function setup(recovery: { skipMiddlewares?: boolean } = {}, requireSession = true): Promise<void> {
  store = createStore({ sweepInterval: false, logger: silentLogger });
  const { connectionStateRecovery, ...rest } = recommendedServerOptions;
  server = await startServer({ ...rest, connectionStateRecovery: { ...connectionStateRecovery, ...recovery } });
  server.io.on('connection', (socket) => {
    socket.on('score', (n: number, ack: () => void) => {
      socket.data.score = n;
      ack();
    });
    socket.on('whoami', (ack: (v: unknown) => void) => ack({ score: socket.data.score, rooms: [...socket.rooms] }));
  });
  tracker = trackConnections(server.io, { store, requireSession, logger: silentLogger });
}

/** Makes the client able to recover: it needs an app event from the server (Lapse's own carry no offset). */
async function offsetReceived(c: ClientSocket): Promise<void> {
  const news = next(c, 'news');
  server.io.to(c.id as string).emit('news', 'hello');
  await news;
}

/** Cuts the client's transport (as a network drop would) and resolves once it is back. */
async function cut(c: ClientSocket): Promise<{ reason: string }> {
  const dropped = next<string>(c, 'disconnect');
  const back = next(c, 'connect', 10_000);
  c.io.engine.close();
  const reason = await dropped;
  await back;
  return { reason };
}

it('after a forced transport close the client recovers its sid, rooms and data, and the tracker keeps one record', async () => {
  await setup();
  const { token, session } = await store.create({ userId: 'zoe' });
  const c = await server.connected({ auth: { token }, ...RECONNECT });
  const sid = c.id as string;
  await ask(c, 'join', 'match-7');
  await ask(c, 'score', 42);
  // Lapse's own events carry exactly their payload, no recovery offset (natural handlers in python-socketio)…
  const ackArgs = new Promise<unknown[]>((resolve) => c.once('heartbeat_ack', (...args: unknown[]) => resolve(args)));
  c.emit('heartbeat');
  expect(await ackArgs).toEqual([{ timestamp: expect.any(Number) }]);
  // …so a client can recover only once it has received an app event, which carries the offset.
  const news = next(c, 'news');
  server.io.to(sid).emit('news', 'hello');
  await news;
  const before = tracker.get(sid);
  const events: string[] = [];
  tracker.on('connected', (conn) => events.push(`connected:${conn.sid}:${conn.recovered}`));
  tracker.on('disconnected', (conn, reason) => events.push(`disconnected:${conn.sid}:${reason}`));

  const { reason } = await cut(c);
  expect(reason).toBe('forced close'); // the client's view; the server sees 'transport close'
  expect(c.recovered).toBe(true);
  expect(c.id).toBe(sid);
  expect(await ask(c, 'whoami')).toEqual({ score: 42, rooms: expect.arrayContaining([sid, 'match-7']) });

  expect(events).toEqual([`disconnected:${sid}:transport close`, `connected:${sid}:true`]);
  expect(tracker.stats()).toEqual({ totalSessions: 1, uniqueUsers: 1, activeRooms: 1, sessionsPerRoom: { 'match-7': 1 } });
  expect(tracker.get(sid)).toMatchObject({
    userId: 'zoe',
    sessionId: session.id,
    rooms: ['match-7'],
    recovered: true,
    connectedAt: before?.connectedAt,
  });
  expect(tracker.byUser('zoe')).toHaveLength(1);
  expect(tracker.inRoom('match-7').map((x) => x.sid)).toEqual([sid]);
  expect(tracker.sizes()).toMatchObject({ connections: 1, users: 1, rooms: 1, sessions: 1, deadlines: 1 });

  // A second cut: still one record.
  await cut(c);
  expect(c.id).toBe(sid);
  expect(tracker.sizes()).toMatchObject({ connections: 1, deadlines: 1 });
  expect(tracker.totals()).toMatchObject({ connected: 3, disconnected: 2 });
});

it('a session revoked during the cut does not come back through recovery (middlewares run again)', async () => {
  await setup();
  const { token } = await store.create({ userId: 'yann' });
  const c = await server.connected({ auth: { token }, ...RECONNECT });
  await ask(c, 'join', 'match-8');
  await offsetReceived(c);
  const refused = next<Error & { data?: { code: string } }>(c, 'connect_error', 10_000);
  const dropped = next(c, 'disconnect');
  c.io.engine.close();
  await dropped;
  await store.revoke(token);
  const err = await refused;
  c.disconnect();
  expect(err.message).toBe('LAPSE_UNAUTHORIZED');
  expect(tracker.stats()).toEqual({ totalSessions: 0, uniqueUsers: 0, activeRooms: 0, sessionsPerRoom: {} });
  expect(tracker.sizes()).toMatchObject({ connections: 0, rooms: 0, deadlines: 0 });
});

it('a recovery that skipped the handshake check never carries the session: refused when one is required, anonymous otherwise', async () => {
  // Socket.IO's own default, skipMiddlewares: true, restores socket.data without asking the middlewares.
  await setup({ skipMiddlewares: true });
  const { token } = await store.create({ userId: 'xavi' });
  const c = await server.connected({ auth: { token }, ...RECONNECT });
  await offsetReceived(c);
  const reasons: string[] = [];
  const cutAgain = new Promise<void>((resolve) =>
    c.on('disconnect', (why) => {
      reasons.push(why);
      if (why === 'io server disconnect') resolve();
    }),
  );
  const back = next(c, 'connect', 10_000);
  c.io.engine.close();
  await back;
  await cutAgain;
  expect(c.recovered).toBe(true);
  expect(reasons).toEqual(['forced close', 'io server disconnect']);
  expect(tracker.stats().totalSessions).toBe(0);
  await tracker.close();
  await server.close();
  await store.close();

  await setup({ skipMiddlewares: true }, false);
  const other = await store.create({ userId: 'yuri' });
  const d = await server.connected({ auth: { token: other.token }, ...RECONNECT });
  expect(tracker.get(d.id as string)?.sessionId).toBe(other.session.id);
  await offsetReceived(d);
  await cut(d);
  expect(d.recovered).toBe(true);
  // Back, but as nobody: its activity extends no session.
  expect(tracker.get(d.id as string)).toMatchObject({ sessionId: null, userId: null });
  expect(tracker.sizes()).toMatchObject({ connections: 1, sessions: 0, watched: 0 });
});
