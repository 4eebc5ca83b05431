import { type Duration, errors, parseDuration } from 'lapse/internal';

/** How the service trusts X-Forwarded-For: not at all, every hop, or these addresses/ranges. */
export type TrustProxy = boolean | string[];
/** The failed-auth rate limit: at most `max` failures per client in `windowMs`, or off. */
export type RateLimitSetting = { max: number; windowMs: number } | false;

/** One setting of the table that drives the environment, the flags, the config file, --help and docs/config.md. */
export interface SettingSpec<K extends string = string> {
  key: K;
  env: string;
  /** Commander flag, e.g. '--port <n>'; absent for values that must not appear in `ps` (keys). */
  flag?: string;
  help: string;
  parse(v: unknown, where: string): unknown;
  /** Default as text, for --help and docs. */
  def?: string;
}

/** Log levels the service accepts. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

// Parsers of setting values. Each takes a value from code, the environment, a flag or the
// config file (so text or the typed value) and the place it came from, for the message.

export const text = (what = 'a non-empty string') => (v: unknown, where: string) => {
  if (typeof v !== 'string' || v.trim() === '') throw errors.optionMustBe(where, what, v);
  return v.trim();
};

export function int(min: number, max: number, what: string) {
  return (v: unknown, where: string) => {
    const n = typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) throw errors.optionMustBe(where, what, v);
    return n;
  };
}

export const optionalInt = (what: string) => (v: unknown, where: string) =>
  v === '' || v === 'off' || v === undefined ? undefined : int(1, Number.MAX_SAFE_INTEGER, what)(v, where);

export function bool(v: unknown, where: string): boolean {
  if (typeof v === 'boolean') return v;
  const s = typeof v === 'string' ? v.trim().toLowerCase() : '';
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  throw errors.optionMustBe(where, 'true or false', v);
}

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * Which X-Forwarded-For hops to believe: off, on (every hop: the client picks its own
 * address), or the proxies' addresses/CIDRs (the address is the last hop they did not add).
 */
export function proxy(v: unknown, where: string): TrustProxy {
  if (typeof v === 'boolean') return v;
  if (Array.isArray(v) && v.every((a) => typeof a === 'string')) v = v.join(',');
  const s = typeof v === 'string' ? v.trim().toLowerCase() : '';
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off'].includes(s)) return false;
  const list = s.split(',').map((a) => a.trim()).filter((a) => a !== '');
  if (list.length === 0 || !list.every((a) => PROXY_NAMES.has(a) || /^[0-9a-f:.]+(\/\d{1,3})?$/.test(a))) {
    throw errors.optionMustBe(where, "'off', 'on', or a comma-separated list of proxy addresses/CIDRs (or loopback, linklocal, uniquelocal)", v);
  }
  return list;
}

export function duration(v: unknown, where: string): Duration {
  if (typeof v !== 'number' && typeof v !== 'string') throw errors.optionMustBe(where, "a duration such as '30s' or '5m'", v);
  try {
    if (parseDuration(v) <= 0) throw new Error('zero');
  } catch {
    throw errors.optionMustBe(where, "a duration greater than zero and at most 400 days, such as '30s', '5m', '6h' or '7d'", v);
  }
  return v;
}

const SIZE = /^(\d+)\s*(b|kb|kib|mb|mib)?$/i;
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, kib: 1024, mb: 1024 * 1024, mib: 1024 * 1024 };

export function bytes(v: unknown, where: string): number {
  let n: number | undefined;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const m = SIZE.exec(v.trim());
    if (m) n = Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? 1);
  }
  if (n === undefined || !Number.isSafeInteger(n) || n < 1024 || n > 64 * 1024 * 1024) {
    throw errors.optionMustBe(where, "a size between 1kb and 64mb, such as 1048576 or '1mb'", v);
  }
  return n;
}

export function origins(v: unknown, where: string): string[] {
  const list = Array.isArray(v) ? v : typeof v === 'string' ? v.split(',') : null;
  if (!list) throw errors.optionMustBe(where, 'a comma-separated list of origins', v);
  const out = list.map((o) => (typeof o === 'string' ? o.trim() : '')).filter((o) => o !== '');
  for (const o of out) {
    if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o)) throw errors.optionMustBe(where, "origins like 'https://app.example.com' or '*'", o);
  }
  return out;
}

export function rate(v: unknown, where: string): RateLimitSetting {
  if (v === false || v === 'off' || v === 'false') return false;
  if (typeof v === 'object' && v !== null) {
    const o = v as { max?: unknown; windowMs?: unknown };
    return { max: int(1, 1e9, 'a whole number >= 1')(o.max, `${where}.max`), windowMs: parseDuration(duration(o.windowMs, `${where}.windowMs`)) };
  }
  const m = typeof v === 'string' ? /^\s*(\d+)\s*\/\s*(\S+)\s*$/.exec(v) : null;
  if (!m) throw errors.optionMustBe(where, "'<count>/<window>' such as '600/1m', or 'off'", v);
  return { max: int(1, 1e9, 'a count >= 1')(m[1], where), windowMs: parseDuration(duration(m[2], where)) };
}

export function backendUrl(v: unknown, where: string): string {
  const s = text()(v, where);
  if (s === 'memory' || s === 'sqlite' || /^(memory|sqlite):.+/.test(s) || /^(rediss?|redis-cluster|postgres(ql)?):\/\/.+/.test(s)) return s;
  throw errors.optionMustBe(where, "'memory', 'sqlite:<path>', 'redis://host:port', 'redis-cluster://host:port,host:port' or 'postgres://host/db'", s);
}

export function level(v: unknown, where: string): LogLevel {
  if (typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v.trim())) return v.trim() as LogLevel;
  throw errors.optionMustBe(where, `one of ${LOG_LEVELS.join(', ')}`, v);
}

export function adminKey(v: unknown, where: string): string {
  if (typeof v !== 'string' || v.length < 24 || /\s/.test(v)) {
    throw errors.optionMustBe(where, 'at least 24 characters without spaces');
  }
  return v;
}

export const sweep = (v: unknown, where: string) => (v === false || v === 'off' || v === 'false' ? false : duration(v, where));
export const optionalDuration = (v: unknown, where: string) => (v === '' || v === undefined ? undefined : duration(v, where));
