import type { Socket } from 'socket.io';
import type { Clock } from '../core/clock.js';
import { type Duration, parseDuration, parsePositiveDuration } from '../core/duration.js';
import { errors, LapseError } from '../core/errors.js';
import type { Logger } from '../util/logger.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { SessionStore } from '../core/store.js';
import type { Connection } from './connection.js';
import type { PresenceRegistry } from './presence.js';

/**
 * A limiter of failed token checks, shared with the HTTP validates of the service. Only
 * failures are limited: a valid token is always checked and served. `sessionId` is the id
 * part of the token when it parses, else null.
 */
export interface FailureLimit {
  /** Records a failed check; ms to wait when the address or the (address, session id) pair is now over its limit (refuse with LAPSE_RATE_LIMITED instead of LAPSE_UNAUTHORIZED), else 0. */
  fail(address: string, sessionId: string | null): number;
}

/** Options of trackConnections; see docs/socket.io.md. */
export interface TrackerOptions {
  /** Authenticates the handshake (auth.token or the session cookie) and keeps the session alive while the socket is active. */
  store?: SessionStore;
  /** Refuse clients without a valid session (needs `store`); they get a connect error `LAPSE_UNAUTHORIZED`. */
  requireSession?: boolean;
  /** Failed handshake checks are counted here; over the limit a client is refused with `LAPSE_RATE_LIMITED`. */
  failureLimit?: FailureLimit;
  /** Cookie that carries the token when `auth.token` is absent; default 'lapse_session'. */
  cookieName?: string;
  /** A connection with no client event for this long is cut; default '5m'. */
  idleTimeout?: Duration;
  /** @deprecated No effect: the deadline timer is the one sweep (the `connection_sweep` job is gone). Still checked as a duration. */
  sweepInterval?: Duration;
  /** `session_expiring` goes out this long before the cut (at most half the timeout); 0 = no warning; default '30s'. */
  warnBefore?: Duration;
  /** A per-room or per-state timeout; undefined means `idleTimeout`. Re-evaluated on every join and leave. */
  idleTimeoutFor?: (conn: Connection, socket: Socket) => Duration | undefined;
  /** Client event answered with `heartbeat_ack { timestamp }`; default 'heartbeat'. */
  heartbeatEvent?: string;
  /** Calls store.touch at most once per this interval per connection; default: the store's rule (idle/10, at most 1 minute). */
  touchInterval?: Duration;
  /** Cluster-wide presence (RedisRegistry from lapse/redis). */
  registry?: PresenceRegistry;
  clock?: Clock;
  /** @deprecated No effect: the tracker runs no scheduled job (its deadline timer is the one sweep). */
  scheduler?: Scheduler;
  logger?: Logger;
}

export interface ResolvedTrackerOptions {
  requireSession: boolean;
  cookieName: string;
  idleTimeout: number;
  sweepInterval: number;
  warnBefore: number;
  heartbeatEvent: string;
  touchInterval: number | undefined;
}

const KNOWN = new Set([
  'store', 'requireSession', 'failureLimit', 'cookieName', 'idleTimeout', 'sweepInterval', 'warnBefore', 'idleTimeoutFor',
  'heartbeatEvent', 'touchInterval', 'registry', 'clock', 'scheduler', 'logger',
]);

/** Checks every option up front (unknown keys included) and turns durations into ms. */
export function resolveTrackerOptions(o: TrackerOptions): ResolvedTrackerOptions {
  if (typeof o !== 'object' || o === null) throw errors.optionMustBe('options', 'an object');
  for (const key of Object.keys(o)) {
    if (!KNOWN.has(key)) throw errors.unknownOption(key);
  }
  if (o.requireSession && !o.store) {
    throw new LapseError('LAPSE_INVALID_OPTION', 'requireSession needs a store to validate tokens with');
  }
  if (o.failureLimit !== undefined && typeof o.failureLimit?.fail !== 'function') {
    throw errors.optionMustBe('failureLimit', 'an object with a fail() method');
  }
  if (o.idleTimeoutFor !== undefined && typeof o.idleTimeoutFor !== 'function') {
    throw errors.optionMustBe('idleTimeoutFor', 'a function');
  }
  if (o.clock !== undefined && typeof o.clock?.now !== 'function') {
    throw errors.optionMustBe('clock', 'an object with a now() method');
  }
  return {
    requireSession: o.requireSession === true,
    cookieName: name(o.cookieName ?? 'lapse_session', 'cookieName'),
    idleTimeout: parsePositiveDuration(o.idleTimeout ?? '5m', 'idleTimeout'),
    sweepInterval: parsePositiveDuration(o.sweepInterval ?? '1m', 'sweepInterval'),
    warnBefore: parseDuration(o.warnBefore ?? '30s', 'warnBefore'),
    heartbeatEvent: name(o.heartbeatEvent ?? 'heartbeat', 'heartbeatEvent'),
    touchInterval: o.touchInterval === undefined ? undefined : parseDuration(o.touchInterval, 'touchInterval'),
  };
}

function name(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw errors.optionMustBe(what, 'a non-empty string');
  return v;
}
