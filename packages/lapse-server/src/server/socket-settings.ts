import { type Duration, errors, parseDuration } from 'lapse/internal';
import { bool, bytes, duration, type SettingSpec } from './config-values.js';

/** One per-room idle timeout: an exact room name, or a prefix when the pattern ends with `*`. */
export interface RoomTimeout {
  pattern: string;
  timeout: Duration;
}

/** The live-connection (Socket.IO at /socket.io/) settings of the service. */
export interface SocketConfig {
  /** Refuse handshakes without a valid session token. */
  socketRequireSession: boolean;
  /** A socket with no client event for this long is cut. */
  socketIdleTimeout: Duration;
  /** `session_expiring` goes out this long before the cut; 0 = no warning. */
  socketWarnBefore: Duration;
  /** Idle timeouts for sockets in some rooms; the shortest that matches applies. */
  socketRoomTimeouts: RoomTimeout[];
  socketPingInterval: Duration;
  socketPingTimeout: Duration;
  /** Largest message a client may send, in bytes. */
  socketMaxMessage: number;
  /** Connection state recovery window, or false (off). */
  socketRecovery: Duration | false;
  /** Cluster-wide presence (a RedisRegistry) when the backend is Redis. */
  socketPresence: boolean;
}

function durationOrZero(v: unknown, where: string): Duration {
  if (v === 0 || v === '0') return 0;
  return duration(v, where);
}

function recovery(v: unknown, where: string): Duration | false {
  return v === false || v === 'off' || v === 'false' ? false : duration(v, where);
}

/** 'match:*=90s,lobby=20m', or in a config file also { "match:*": "90s" }. */
function roomTimeouts(v: unknown, where: string): RoomTimeout[] {
  const what = "a list like 'match:*=90s,lobby=20m' (a trailing * matches a prefix)";
  let pairs: [string, unknown][];
  if (typeof v === 'string') {
    pairs = v
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '')
      .map((p) => {
        const eq = p.lastIndexOf('=');
        if (eq <= 0) throw errors.optionMustBe(where, what, v);
        return [p.slice(0, eq).trim(), p.slice(eq + 1).trim()];
      });
  } else if (Array.isArray(v)) {
    pairs = v.map((r: unknown) => {
      const o = r as Partial<RoomTimeout> | null;
      if (typeof o?.pattern !== 'string') throw errors.optionMustBe(where, what, v);
      return [o.pattern, o.timeout];
    });
  } else if (typeof v === 'object' && v !== null) {
    pairs = Object.entries(v);
  } else throw errors.optionMustBe(where, what, v);
  return pairs.map(([pattern, t]) => {
    if (pattern === '' || pattern === '*') throw errors.optionMustBe(where, what, v);
    return { pattern, timeout: duration(t, `${where} (${pattern})`) };
  });
}

/** The settings, appended to the service's SETTINGS table (flags, env, config file, docs). */
export const SOCKET_SETTINGS: readonly SettingSpec<keyof SocketConfig>[] = [
  { key: 'socketRequireSession', env: 'LAPSE_SOCKET_REQUIRE_SESSION', flag: '--socket-require-session <on|off>', help: 'refuse Socket.IO handshakes without a valid session token', def: 'on', parse: bool },
  { key: 'socketIdleTimeout', env: 'LAPSE_SOCKET_IDLE_TIMEOUT', flag: '--socket-idle-timeout <duration>', help: 'a socket with no client event for this long is cut', def: '5m', parse: duration },
  { key: 'socketWarnBefore', env: 'LAPSE_SOCKET_WARN_BEFORE', flag: '--socket-warn-before <duration>', help: 'session_expiring this long before the cut (0 = none)', def: '30s', parse: durationOrZero },
  { key: 'socketRoomTimeouts', env: 'LAPSE_SOCKET_ROOM_TIMEOUTS', flag: '--socket-room-timeouts <list>', help: "idle timeouts per room, e.g. 'match:*=90s,lobby=20m'", def: '', parse: roomTimeouts },
  { key: 'socketPingInterval', env: 'LAPSE_SOCKET_PING_INTERVAL', flag: '--socket-ping-interval <duration>', help: 'Engine.IO ping interval', def: '25s', parse: duration },
  { key: 'socketPingTimeout', env: 'LAPSE_SOCKET_PING_TIMEOUT', flag: '--socket-ping-timeout <duration>', help: 'a client that misses a pong this long is gone', def: '20s', parse: duration },
  { key: 'socketMaxMessage', env: 'LAPSE_SOCKET_MAX_MESSAGE', flag: '--socket-max-message <size>', help: 'largest message a client may send', def: '1mb', parse: bytes },
  { key: 'socketRecovery', env: 'LAPSE_SOCKET_RECOVERY', flag: '--socket-recovery <duration|off>', help: 'connection state recovery window, or off', def: 'off', parse: recovery },
  { key: 'socketPresence', env: 'LAPSE_SOCKET_PRESENCE', flag: '--socket-presence <on|off>', help: 'cluster-wide presence on a Redis backend', def: 'on', parse: bool },
];

export const SOCKET_DEFAULTS: SocketConfig = {
  socketRequireSession: true,
  socketIdleTimeout: '5m',
  socketWarnBefore: '30s',
  socketRoomTimeouts: [],
  socketPingInterval: '25s',
  socketPingTimeout: '20s',
  socketMaxMessage: 1024 * 1024,
  socketRecovery: false,
  socketPresence: true,
};

/** The shortest timeout among the room patterns that match one of `rooms`, or undefined. */
export function roomTimeoutOf(patterns: readonly RoomTimeout[], rooms: readonly string[]): number | undefined {
  let best: number | undefined;
  for (const p of patterns) {
    const prefix = p.pattern.endsWith('*') ? p.pattern.slice(0, -1) : null;
    if (!rooms.some((r) => (prefix === null ? r === p.pattern : r.startsWith(prefix)))) continue;
    const ms = parseDuration(p.timeout);
    if (best === undefined || ms < best) best = ms;
  }
  return best;
}

/** Socket.IO server options from the settings (the recommended ones, with these values). */
export function socketServerOptions(c: SocketConfig) {
  return {
    pingInterval: parseDuration(c.socketPingInterval),
    pingTimeout: parseDuration(c.socketPingTimeout),
    maxHttpBufferSize: c.socketMaxMessage,
    connectionStateRecovery:
      c.socketRecovery === false ? undefined : { maxDisconnectionDuration: parseDuration(c.socketRecovery), skipMiddlewares: false },
  };
}
