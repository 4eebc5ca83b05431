import type { Backend } from './backend.js';
import type { Clock } from './clock.js';
import { type Duration, MAX_LEASE_MS, parseDuration, parsePositiveDuration } from './duration.js';
import { errors } from './errors.js';
import type { Logger } from '../util/logger.js';
import type { Scheduler } from '../scheduler/scheduler.js';

/** Options of createStore; see docs/store.md. */
export interface StoreOptions {
  /** Where sessions live; default memory(). */
  backend?: Backend;
  /** Sliding expiry; default '30m'. */
  idleTimeout?: Duration;
  /** Hard cap from creation; default '12h'. */
  absoluteTimeout?: Duration;
  /** LRU eviction beyond this many sessions; expired sessions go first. */
  maxSessions?: number;
  /** The user's least recently used session goes beyond this many. */
  maxSessionsPerUser?: number;
  /** Expiry is written at most once per interval; default idleTimeout/10, capped at 1 minute. */
  touchInterval?: Duration;
  /** Default lease length; default '30s'. */
  lockTimeout?: Duration;
  /** Background cleanup job; default '1m'; false turns it off. */
  sweepInterval?: Duration | false;
  /** Largest JSON text of `data`; default 256 KiB. */
  maxDataBytes?: number;
  clock?: Clock;
  logger?: Logger;
  /** Run the store's jobs on this scheduler instead of a new one. */
  scheduler?: Scheduler;
}

export interface ResolvedOptions {
  idleTimeout: number;
  absoluteTimeout: number;
  maxSessions: number | undefined;
  maxSessionsPerUser: number | undefined;
  touchInterval: number | undefined;
  lockTimeout: number;
  sweepInterval: number | false;
  maxDataBytes: number;
}

const KNOWN = new Set([
  'backend', 'idleTimeout', 'absoluteTimeout', 'maxSessions', 'maxSessionsPerUser', 'touchInterval',
  'lockTimeout', 'sweepInterval', 'maxDataBytes', 'clock', 'logger', 'scheduler',
]);

/** Checks every option up front (unknown keys included) and turns durations into ms. */
export function resolveOptions(o: StoreOptions): ResolvedOptions {
  if (typeof o !== 'object' || o === null) throw errors.optionMustBe('options', 'an object');
  for (const key of Object.keys(o)) {
    if (!KNOWN.has(key)) throw errors.unknownOption(key);
  }
  if (o.clock !== undefined && typeof o.clock?.now !== 'function') {
    throw errors.optionMustBe('clock', 'an object with a now() method');
  }
  if (o.backend !== undefined && (typeof o.backend !== 'object' || typeof o.backend?.get !== 'function')) {
    throw errors.optionMustBe('backend', 'an object implementing the Backend interface');
  }
  return {
    idleTimeout: parsePositiveDuration(o.idleTimeout ?? '30m', 'idleTimeout'),
    absoluteTimeout: parsePositiveDuration(o.absoluteTimeout ?? '12h', 'absoluteTimeout'),
    maxSessions: count(o.maxSessions, 'maxSessions'),
    maxSessionsPerUser: count(o.maxSessionsPerUser, 'maxSessionsPerUser'),
    touchInterval: o.touchInterval === undefined ? undefined : parseDuration(o.touchInterval, 'touchInterval'),
    lockTimeout: parsePositiveDuration(o.lockTimeout ?? '30s', 'lockTimeout', MAX_LEASE_MS),
    sweepInterval: o.sweepInterval === false ? false : parsePositiveDuration(o.sweepInterval ?? '1m', 'sweepInterval'),
    maxDataBytes: count(o.maxDataBytes, 'maxDataBytes') ?? 256 * 1024,
  };
}

function count(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
    throw errors.optionMustBe(name, 'a whole number >= 1', v);
  }
  return v;
}

/** The write-coalescing interval of a session with the given idle timeout. */
export function touchIntervalFor(opts: ResolvedOptions, idleTimeout: number): number {
  return opts.touchInterval ?? Math.min(Math.floor(idleTimeout / 10), 60_000);
}
