import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duration } from 'lapse/internal';
import { errors, LapseError } from 'lapse/internal';
import {
  adminKey, backendUrl, bool, bytes, duration, int, LOG_LEVELS, type LogLevel, level, optionalDuration, optionalInt, origins, proxy, rate, sweep, text,
  type RateLimitSetting,
  type SettingSpec,
  type TrustProxy,
} from './config-values.js';
import { SOCKET_DEFAULTS, SOCKET_SETTINGS, type SocketConfig } from './socket-settings.js';

export { LOG_LEVELS, type LogLevel } from './config-values.js';

/** Store policy the service passes to createStore. */
export interface ServiceStoreOptions {
  idleTimeout: Duration;
  absoluteTimeout: Duration;
  maxSessions: number | undefined;
  maxSessionsPerUser: number | undefined;
  lockTimeout: Duration;
  sweepInterval: Duration | false;
  touchInterval: Duration | undefined;
}

/** The service's configuration, every value checked (see docs/config.md). */
export interface ServerConfig extends ServiceStoreOptions, SocketConfig {
  host: string;
  port: number;
  /** 'memory', 'memory:<snapshot file>', 'sqlite:<path>' or 'redis://…' / 'rediss://…'. */
  backend: string;
  /** Holds keys.json and, by default, the SQLite file. */
  dataDir: string;
  redisPrefix: string | undefined;
  /** When set, this is the admin key and none is generated. Only from the environment or code. */
  adminKey: string | undefined;
  logLevel: LogLevel;
  accessLog: boolean;
  /** Largest request body in bytes. */
  bodyLimit: number;
  /** Origins allowed by CORS; empty means CORS is off. */
  corsOrigins: string[];
  /** Which X-Forwarded-For hops give the client address: false, true (all: spoofable), or the proxies' addresses/CIDRs. */
  trustProxy: TrustProxy;
  /** Failed token checks allowed per client address per window; false turns the limit off. */
  rateLimit: RateLimitSetting;
}

/** What callers may pass: any subset; strings are accepted wherever the environment would give one. */
export type ServerConfigInput = { [K in keyof ServerConfig]?: ServerConfig[K] | string };

type Key = keyof ServerConfig;

/** One setting's row in the table. */
export type Spec = SettingSpec<keyof ServerConfig>;

/** Every setting: one table drives the environment, the flags, the config file, --help and docs/config.md. */
export const SETTINGS: readonly Spec[] = [
  { key: 'host', env: 'LAPSE_HOST', flag: '--host <host>', help: 'address to listen on', def: '127.0.0.1', parse: text() },
  { key: 'port', env: 'LAPSE_PORT', flag: '--port <port>', help: 'port to listen on (0 = any free port)', def: '7411', parse: int(0, 65535, 'a port number 0-65535') },
  { key: 'dataDir', env: 'LAPSE_DATA_DIR', flag: '--data-dir <dir>', help: 'folder for keys.json and the default SQLite file', def: './data', parse: text() },
  { key: 'backend', env: 'LAPSE_BACKEND', flag: '--backend <url>', help: "'memory', 'sqlite:<path>', 'redis://host:port', 'redis-cluster://host:port,host:port' or 'postgres://host/db'", def: 'sqlite:<dataDir>/lapse.db', parse: backendUrl },
  { key: 'redisPrefix', env: 'LAPSE_REDIS_PREFIX', flag: '--redis-prefix <prefix>', help: 'key prefix on Redis', parse: text() },
  { key: 'adminKey', env: 'LAPSE_ADMIN_KEY', help: 'the admin key (none is generated when set)', parse: adminKey },
  { key: 'logLevel', env: 'LAPSE_LOG_LEVEL', flag: '--log-level <level>', help: LOG_LEVELS.join(' | '), def: 'info', parse: level },
  { key: 'accessLog', env: 'LAPSE_ACCESS_LOG', flag: '--access-log <on|off>', help: 'one log line per request (at info)', def: 'on', parse: bool },
  { key: 'bodyLimit', env: 'LAPSE_BODY_LIMIT', flag: '--body-limit <size>', help: 'largest request body; larger is 413', def: '1mb', parse: bytes },
  { key: 'corsOrigins', env: 'LAPSE_CORS_ORIGINS', flag: '--cors-origins <list>', help: 'comma-separated origins allowed by CORS (off when empty)', def: '', parse: origins },
  { key: 'trustProxy', env: 'LAPSE_TRUST_PROXY', flag: '--trust-proxy <setting>', help: "client address from X-Forwarded-For: 'off', the proxies' addresses/CIDRs, or 'on' (trusts every hop: clients can pick their address)", def: 'off', parse: proxy },
  { key: 'rateLimit', env: 'LAPSE_RATE_LIMIT', flag: '--rate-limit <n/window>', help: "failed token checks per client address (a valid token is never refused), e.g. '600/1m', or 'off'", def: '600/1m', parse: rate },
  { key: 'idleTimeout', env: 'LAPSE_IDLE_TIMEOUT', flag: '--idle-timeout <duration>', help: 'sliding expiry of sessions', def: '30m', parse: duration },
  { key: 'absoluteTimeout', env: 'LAPSE_ABSOLUTE_TIMEOUT', flag: '--absolute-timeout <duration>', help: 'hard cap from creation', def: '12h', parse: duration },
  { key: 'maxSessions', env: 'LAPSE_MAX_SESSIONS', flag: '--max-sessions <n>', help: 'LRU eviction beyond this many sessions', parse: optionalInt('a whole number >= 1') },
  { key: 'maxSessionsPerUser', env: 'LAPSE_MAX_SESSIONS_PER_USER', flag: '--max-sessions-per-user <n>', help: "a user's least recently used session goes beyond this", parse: optionalInt('a whole number >= 1') },
  { key: 'lockTimeout', env: 'LAPSE_LOCK_TIMEOUT', flag: '--lock-timeout <duration>', help: 'default lease length', def: '30s', parse: duration },
  { key: 'sweepInterval', env: 'LAPSE_SWEEP_INTERVAL', flag: '--sweep-interval <duration>', help: "how often session_cleanup runs, or 'off'", def: '1m', parse: sweep },
  { key: 'touchInterval', env: 'LAPSE_TOUCH_INTERVAL', flag: '--touch-interval <duration>', help: 'write a sliding expiry at most this often', def: 'idleTimeout/10, max 1m', parse: optionalDuration },
  // Live connections (issue #13): their own block, in socket-settings.ts.
  ...SOCKET_SETTINGS,
];

const DEFAULTS = {
  host: '127.0.0.1',
  port: 7411,
  dataDir: './data',
  redisPrefix: undefined,
  adminKey: undefined,
  logLevel: 'info',
  accessLog: true,
  bodyLimit: 1024 * 1024,
  corsOrigins: [],
  trustProxy: false,
  rateLimit: { max: 600, windowMs: 60_000 },
  idleTimeout: '30m',
  absoluteTimeout: '12h',
  maxSessions: undefined,
  maxSessionsPerUser: undefined,
  lockTimeout: '30s',
  sweepInterval: '1m',
  touchInterval: undefined,
  ...SOCKET_DEFAULTS,
} satisfies Omit<ServerConfig, 'backend'>;

const BY_KEY = new Map(SETTINGS.map((s) => [s.key, s]));

/**
 * Checks a configuration given in code and fills in defaults. Names the bad key in errors.
 * @example resolveConfig({ backend: 'memory', port: 0 })
 */
export function resolveConfig(input: ServerConfigInput = {}, where: (key: Key) => string = (k) => `config.${k}`): ServerConfig {
  if (typeof input !== 'object' || input === null) throw errors.optionMustBe('the configuration', 'an object');
  const out: Record<string, unknown> = { ...DEFAULTS };
  for (const [key, value] of Object.entries(input)) {
    const spec = BY_KEY.get(key as Key);
    if (!spec) throw errors.unknownOption(key, { kind: 'setting', known: SETTINGS.map((s) => s.key) });
    if (value === undefined) continue;
    out[key] = spec.parse(value, where(key as Key));
  }
  out.backend ??= `sqlite:${join(out.dataDir as string, 'lapse.db')}`;
  if (out.backend === 'sqlite') out.backend = `sqlite:${join(out.dataDir as string, 'lapse.db')}`;
  return out as unknown as ServerConfig;
}

/** Where each setting came from, for messages that point at the right place. */
type Source = 'flag' | 'env' | 'file';

/**
 * Merges the config file, the environment and the flags (flags win, then the environment,
 * then the file, then defaults) and checks every value.
 * @example loadConfig({ flags: { port: '8080' }, env: process.env })
 */
export function loadConfig(opts: { flags?: Record<string, unknown>; env?: NodeJS.ProcessEnv; file?: string } = {}): ServerConfig {
  const env = opts.env ?? process.env;
  const flags = opts.flags ?? {};
  const merged: Record<string, unknown> = {};
  const source = new Map<string, Source>();
  const file = opts.file ?? (typeof flags.config === 'string' ? flags.config : undefined) ?? env.LAPSE_CONFIG;
  if (file) {
    for (const [k, v] of Object.entries(readConfigFile(file))) {
      if (!BY_KEY.has(k as Key)) throw errors.unknownOption(k, { kind: 'setting', where: file, known: SETTINGS.map((s) => s.key) });
      if (k === 'adminKey') throw new LapseError('LAPSE_INVALID_OPTION', `${file}: put the admin key in LAPSE_ADMIN_KEY, not in a file`);
      merged[k] = v;
      source.set(k, 'file');
    }
  }
  for (const s of SETTINGS) {
    const v = env[s.env];
    if (v !== undefined && v !== '') {
      merged[s.key] = v;
      source.set(s.key, 'env');
    }
    if (flags[s.key] !== undefined && s.flag) {
      merged[s.key] = flags[s.key];
      source.set(s.key, 'flag');
    }
  }
  return resolveConfig(merged as ServerConfigInput, (k) => {
    const s = BY_KEY.get(k);
    const from = source.get(k);
    if (!s) return k;
    if (from === 'flag') return (s.flag ?? '').split(' ')[0] ?? k;
    if (from === 'env') return s.env;
    return `${file}: ${k}`;
  });
}

function readConfigFile(path: string): Record<string, unknown> {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    throw new LapseError('LAPSE_INVALID_OPTION', `cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new LapseError('LAPSE_INVALID_OPTION', `config file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw errors.optionMustBe(`config file ${path}`, 'a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/** The store options of a resolved configuration. */
export function storeOptionsOf(c: ServerConfig) {
  return {
    idleTimeout: c.idleTimeout,
    absoluteTimeout: c.absoluteTimeout,
    maxSessions: c.maxSessions,
    maxSessionsPerUser: c.maxSessionsPerUser,
    lockTimeout: c.lockTimeout,
    sweepInterval: c.sweepInterval,
    touchInterval: c.touchInterval,
  };
}
