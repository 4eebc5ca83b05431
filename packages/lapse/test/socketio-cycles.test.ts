import { afterAll, beforeAll, expect, it } from 'vitest';
import { silentLogger } from '../src/util/logger.js';
import { type ConnectionTracker, trackConnections } from '../src/socket.io/index.js';
import { ask, type ClientSocket, expectedStats, next, startServer, type TestServer, until } from './fixtures/socketio-harness.js';

const CYCLES = 1000;
const BATCH = 50;
const USERS = 17;
const ROOMS = 7;
const TIME_BUDGET_MS = 60_000;

let server: TestServer;
let tracker: ConnectionTracker;

beforeAll(async () => {
  server = await startServer();
  // Identity from a middleware of the app (no store): the tracker reads socket.data.userId.
  server.io.use((socket, next) => {
    socket.data.userId = socket.handshake.auth.userId as string;
    next();
  });
  // A join that lands after the socket is gone (Socket.IO makes socket.join a no-op by then).
  server.io.on('connection', (socket) => {
    socket.on('late-join', (room: string, ack: () => void) => {
      ack();
      setTimeout(() => socket.join(room), 30);
    });
  });
  tracker = trackConnections(server.io, { logger: silentLogger });
});

afterAll(async () => {
  await tracker?.close();
  await server?.close();
});

it(`stats stay exact over ${CYCLES} connect/join/disconnect cycles, and nothing leaks`, { timeout: TIME_BUDGET_MS + 10_000 }, async () => {
  const started = Date.now();
  let cycles = 0;
  let serverSide = 0;
  while (cycles < CYCLES) {
    expect(Date.now() - started, 'time budget').toBeLessThan(TIME_BUDGET_MS);
    const live: { c: ClientSocket; userId: string; rooms: Set<string> }[] = [];
    await Promise.all(
      Array.from({ length: BATCH }, async (_, i) => {
        const n = cycles + i;
        const userId = `u${n % USERS}`;
        const c = await server.connected({ auth: { userId } });
        const rooms = new Set([`r${n % ROOMS}`, `r${(n * 3 + 1) % ROOMS}`]);
        for (const room of rooms) await ask(c, 'join', room);
        // Every third client leaves one of its rooms again.
        if (n % 3 === 0) {
          const first = [...rooms][0] as string;
          await ask(c, 'leave', first);
          rooms.delete(first);
        }
        live.push({ c, userId, rooms });
      }),
    );
    expect(tracker.stats()).toEqual(expectedStats(live));
    for (const { userId } of live) expect(tracker.countUser(userId)).toBe(live.filter((l) => l.userId === userId).length);

    // Half leave from the client, half are disconnected by the server; some ask for a join that lands too late.
    await Promise.all(live.filter((_, i) => i % 5 === 0).map(({ c }) => ask(c, 'late-join', 'ghost-room')));
    const sids = live.map(({ c }) => c.id as string);
    const gone = live.map(({ c }) => next(c, 'disconnect'));
    live.forEach(({ c }, i) => {
      if (i % 2 === 0) c.disconnect();
      else {
        server.io.of('/').sockets.get(c.id as string)?.disconnect(true);
        serverSide++;
      }
    });
    await Promise.all(gone);
    await until(() => tracker.stats().totalSessions === 0, 'every socket gone from the tracker');
    // An adapter-level join racing the disconnect (as a remote node's socketsJoin can): the
    // adapter takes it, the tracker must not.
    for (const sid of sids.filter((_, i) => i % 7 === 0)) server.io.of('/').adapter.addAll(sid, new Set(['ghost-room']));
    cycles += BATCH;
  }
  // Let the late joins land on dead sockets.
  await new Promise((r) => setTimeout(r, 60));

  expect(cycles).toBe(CYCLES);
  expect(serverSide).toBe(CYCLES / 2);
  expect(tracker.stats()).toEqual({ totalSessions: 0, uniqueUsers: 0, activeRooms: 0, sessionsPerRoom: {} });
  // The adapter did put the dead sockets into the room...
  expect(server.io.of('/').adapter.rooms.get('ghost-room')?.size ?? 0).toBeGreaterThan(0);
  // ...but no index of the tracker holds them.
  expect(tracker.inRoom('ghost-room')).toEqual([]);
  expect(tracker.sizes()).toEqual({ connections: 0, users: 0, rooms: 0, sessions: 0, deadlines: 0, watched: 0, timerArmed: false });
  expect(tracker.totals()).toMatchObject({ connected: CYCLES, disconnected: CYCLES });
});
