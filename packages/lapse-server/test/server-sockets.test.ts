/** The service's live-connection settings, in process: config parsing and what reaches Socket.IO and the tracker. */
import type { AddressInfo } from 'node:net';
import { io, type Socket } from 'socket.io-client';
import { describe, expect, it } from 'vitest';
import { ManualClock } from 'lapse/internal';
import { LapseError } from 'lapse/internal';
import { createServer, loadConfig, type LapseServer, resolveConfig } from '../src/server/index.js';
import { roomTimeoutOf } from '../src/server/socket-settings.js';
import { tempDir } from '../../../test/helpers/tmp.js';
import { cleanupsAfterEach } from '../../../test/helpers/cleanups.js';

const ADMIN = `lapse_admin_${'s'.repeat(43)}`;
const cleanups = cleanupsAfterEach();

describe('socket settings', () => {
  it('have the documented defaults and parse flags, env and file forms', () => {
    const c = loadConfig({ env: {} });
    expect(c).toMatchObject({
      socketRequireSession: true, socketIdleTimeout: '5m', socketWarnBefore: '30s', socketRoomTimeouts: [],
      socketPingInterval: '25s', socketPingTimeout: '20s', socketMaxMessage: 1024 * 1024, socketRecovery: false, socketPresence: true,
    });
    const e = loadConfig({
      env: { LAPSE_SOCKET_REQUIRE_SESSION: 'off', LAPSE_SOCKET_WARN_BEFORE: '0', LAPSE_SOCKET_RECOVERY: '2m', LAPSE_SOCKET_ROOM_TIMEOUTS: 'match:*=90s, lobby=20m' },
      flags: { socketMaxMessage: '64kb' },
    });
    expect(e).toMatchObject({ socketRequireSession: false, socketWarnBefore: 0, socketRecovery: '2m', socketMaxMessage: 65536 });
    expect(e.socketRoomTimeouts).toEqual([{ pattern: 'match:*', timeout: '90s' }, { pattern: 'lobby', timeout: '20m' }]);
    expect(resolveConfig({ socketRoomTimeouts: { 'match:*': '90s' } as never }).socketRoomTimeouts).toEqual([{ pattern: 'match:*', timeout: '90s' }]);
  });

  it('name the source of a bad value', () => {
    const bad = (env: Record<string, string>) => {
      try {
        loadConfig({ env });
      } catch (err) {
        expect(err).toBeInstanceOf(LapseError);
        expect((err as LapseError).code).toBe('LAPSE_INVALID_OPTION');
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad({ LAPSE_SOCKET_IDLE_TIMEOUT: 'soon' })).toContain('LAPSE_SOCKET_IDLE_TIMEOUT');
    expect(bad({ LAPSE_SOCKET_ROOM_TIMEOUTS: 'match' })).toContain("'match:*=90s,lobby=20m'");
    expect(bad({ LAPSE_SOCKET_ROOM_TIMEOUTS: 'match:*=never' })).toContain('match:*');
    expect(bad({ LAPSE_SOCKET_RECOVERY: 'maybe' })).toContain('LAPSE_SOCKET_RECOVERY');
    expect(bad({ LAPSE_SOCKET_REQUIRE_SESSION: 'sometimes' })).toContain('LAPSE_SOCKET_REQUIRE_SESSION');
  });

  it('room timeouts: exact names and prefixes, the shortest match wins', () => {
    const p = [{ pattern: 'match:*', timeout: '90s' }, { pattern: 'lobby', timeout: '20m' }, { pattern: 'match:final', timeout: '30s' }];
    expect(roomTimeoutOf(p, ['lobby'])).toBe(1_200_000);
    expect(roomTimeoutOf(p, ['lobby', 'match:7'])).toBe(90_000);
    expect(roomTimeoutOf(p, ['match:final'])).toBe(30_000);
    expect(roomTimeoutOf(p, ['lobby-2'])).toBeUndefined();
  });
});

describe('the service with its socket settings', () => {
  async function start(config: Parameters<typeof createServer>[0]): Promise<{ app: LapseServer; url: string }> {
    const tmp = tempDir('lapse-sock-');
    const app = await createServer({ backend: 'memory', dataDir: tmp.dir, adminKey: ADMIN, logLevel: 'silent', ...config });
    cleanups.push(() => tmp.cleanup(), () => app.close());
    await app.listen({ host: '127.0.0.1', port: 0 });
    return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
  }

  function connect(url: string, auth?: Record<string, unknown>): Promise<Socket> {
    const s = io(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
    cleanups.push(() => s.disconnect());
    return new Promise((resolve, reject) => {
      s.once('connect', () => resolve(s));
      s.once('connect_error', reject);
    });
  }

  it('applies idle, warning, room timeouts and Socket.IO options; code options go over them', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const { app, url } = await start({
      clock, socketIdleTimeout: '5m', socketWarnBefore: '10s', socketRoomTimeouts: 'match:*=90s', socketPingInterval: '7s', socketMaxMessage: '64kb',
      liveConnections: { heartbeatEvent: 'beat', serverOptions: { pingTimeout: 3000 } },
      onReady: (a) => {
        a.lapse.live?.io.on('connection', (socket) => socket.on('join', (room: string, ack: () => void) => void Promise.resolve(socket.join(room)).then(ack)));
      },
    });
    const live = app.lapse.live;
    expect(live).not.toBeNull();
    expect(live?.io.engine.opts).toMatchObject({ pingInterval: 7000, pingTimeout: 3000, maxHttpBufferSize: 65536 });
    const { token } = await app.lapse.store.create({ userId: 'gus' });
    const s = await connect(url, { token });
    const conn = () => live?.tracker.get(s.id as string);
    expect(conn()?.idleTimeout).toBe(300_000);
    await s.emitWithAck('join', 'match:3');
    expect(conn()?.idleTimeout).toBe(90_000);
    const warned = new Promise<{ expiresAt: number }>((resolve) => s.once('session_expiring', resolve));
    await clock.advance('80s');
    expect((await warned).expiresAt).toBe(conn()?.expiresAt);
    const acked = new Promise((resolve) => s.once('heartbeat_ack', resolve));
    s.emit('beat');
    expect(await acked).toEqual({ timestamp: clock.now() });
  });

  it('admits anonymous sockets only when the require-session setting is off', async () => {
    const off = await start({ socketRequireSession: false });
    const s = await connect(off.url);
    expect(off.app.lapse.live?.tracker.get(s.id as string)).toMatchObject({ sessionId: null, userId: null });
    const on = await start({});
    const err = await connect(on.url).then(() => null, (e: Error) => e);
    expect(err?.message).toBe('LAPSE_UNAUTHORIZED');
  });
});
