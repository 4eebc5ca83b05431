/**
 * The parts of a stored express-session session that Lapse reads (idle window, user id), with no
 * express-session type in them: the CLI's import command uses them too, through lapse/internal.
 */
import { errors, LapseError } from '../core/errors.js';
import { isValidId } from '../core/token.js';

/** A session as express-session and @fastify/session hand it to a store, in its JSON form. */
export type StoredSession = Record<string, unknown> & { cookie?: Record<string, unknown> };

/** What idleWindow answers for a cookie whose expiry date has passed. */
export const EXPIRED = -1;

/**
 * The idle window a cookie asks for: its maxAge, else the time left to its expiry date,
 * else undefined (the Lapse store's idleTimeout). -1 when that date has passed.
 */
export function idleWindow(cookie: unknown, now: number): number | undefined {
  if (!isPlain(cookie)) return undefined;
  const at = typeof cookie.expires === 'string' ? Date.parse(cookie.expires) : Number.NaN;
  if (Number.isFinite(at) && at <= now) return EXPIRED;
  if (typeof cookie.originalMaxAge === 'number' && cookie.originalMaxAge > 0) return cookie.originalMaxAge;
  return Number.isFinite(at) ? at - now : undefined;
}

/** A user id as Lapse stores it: strings as they are, numbers as text, null for none; anything else is LAPSE_INVALID_INPUT. */
export function userIdFrom(u: unknown): string | null {
  if (u === undefined || u === null) return null;
  if (typeof u === 'number' && Number.isFinite(u)) return String(u);
  if (typeof u === 'string' && isValidId(u)) return u;
  throw errors.inputMustBe('userId(sess)', 'a string of at most 256 characters, a number or null');
}

/**
 * A userId mapping that reads a dotted path of the session, for configs and the CLI.
 * @example new LapseStore({ store, userId: userField('passport.user') })
 */
export function userField(path: string): (sess: StoredSession) => string | number | null | undefined {
  const parts = path.split('.').filter((p) => p !== '');
  if (parts.length === 0) throw new LapseError('LAPSE_INVALID_OPTION', 'a user field is a dotted path such as passport.user');
  return (sess) => {
    let v: unknown = sess;
    for (const p of parts) v = isPlain(v) && Object.hasOwn(v, p) ? v[p] : undefined;
    return v as string | number | null | undefined;
  };
}

/** A plain object (not null, not an array). */
export function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
