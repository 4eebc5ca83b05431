import type { Socket } from 'socket.io';
import { ERROR_CODES, LapseError, type LapseErrorCode } from '../core/errors.js';
import type { Session } from '../core/session.js';
import type { SessionStore } from '../core/store.js';
import { parseToken } from '../core/token.js';
import type { FailureLimit } from './options.js';
import type { LapseSocketData } from './connection.js';

/** What a refused client receives as `err.data` on its `connect_error`. */
export interface ConnectErrorData {
  code: LapseErrorCode;
  message: string;
}

/** A LapseError that Socket.IO sends to the client: `err.message` is the code, `err.data` explains it. */
export type ConnectError = LapseError & { data: ConnectErrorData };

/** Builds the error a middleware passes to `next()` to refuse a handshake. */
export function connectError(code: LapseErrorCode, message: string = ERROR_CODES[code].message, cause?: unknown): ConnectError {
  // The message is the bare code so that clients can test `err.message === 'LAPSE_UNAUTHORIZED'`.
  const err = new LapseError(code, code, { cause });
  return Object.assign(err, { data: { code, message } });
}

/** The token of a handshake: `auth.token` first, then the session cookie. Never the query string. */
export function handshakeToken(socket: Socket, cookieName: string): string | null {
  const auth = socket.handshake.auth as Record<string, unknown> | undefined;
  if (typeof auth?.token === 'string' && auth.token !== '') return auth.token;
  const header = socket.handshake.headers.cookie;
  return typeof header === 'string' ? readCookie(header, cookieName) : null;
}

/** One cookie's value from a Cookie header (RFC 6265 pairs, percent-decoded), or null. */
export function readCookie(header: string, name: string): string | null {
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
    let value = pair.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    try {
      return decodeURIComponent(value);
    } catch {
      return value;
    }
  }
  return null;
}

/** Store's default write interval for a session: its idle timeout / 10, at most one minute. */
function defaultTouchEvery(s: Session): number {
  const idle = Math.max(0, s.expiresAt - s.lastAccessedAt);
  return Math.min(Math.floor(idle / 10), 60_000);
}

const UNAUTHORIZED = 'A valid session token is required: pass it as auth.token or in the session cookie.';
const LIMITED = 'Too many failed session checks from this client; retry later.';

/**
 * The handshake middleware: validates the token against the store and records who the
 * socket belongs to in `socket.data.lapse`, and in `verified` (which a recovered
 * `socket.data` cannot forge). A backend failure refuses the client with
 * LAPSE_BACKEND_UNAVAILABLE rather than letting it in as anonymous. Failed checks (no token
 * while one is required, or a token that does not validate) are counted by `failureLimit`.
 */
export function sessionMiddleware(opts: {
  store: SessionStore;
  requireSession: boolean;
  cookieName: string;
  touchInterval: number | undefined;
  failureLimit: FailureLimit | undefined;
  verified: WeakSet<Socket>;
  isClosed: () => boolean;
}): (socket: Socket, next: (err?: Error) => void) => void {
  const limit = opts.failureLimit;
  /** Counts a failed check; throws when the client must be refused. */
  const failed = (address: string, sessionId: string | null): void => {
    const wait = limit?.fail(address, sessionId) ?? 0;
    if (wait > 0) throw connectError('LAPSE_RATE_LIMITED', LIMITED);
    if (opts.requireSession) throw connectError('LAPSE_UNAUTHORIZED', UNAUTHORIZED);
  };
  const authenticate = async (socket: Socket): Promise<void> => {
    const token = handshakeToken(socket, opts.cookieName);
    const address = socket.handshake.address;
    socket.data ??= {};
    const data = socket.data as { lapse?: LapseSocketData };
    // Whatever a recovery restored is not trusted until this handshake proves it.
    const prev = data.lapse;
    delete data.lapse;
    if (token === null) {
      if (opts.requireSession) failed(address, null);
      return;
    }
    const sessionId = parseToken(token)?.id ?? null;
    let session: Session | null;
    try {
      session = await opts.store.validate(token);
    } catch (err) {
      const e = err instanceof LapseError ? err : new LapseError('LAPSE_BACKEND_UNAVAILABLE', undefined, { cause: err });
      throw connectError(e.code, e.message, e);
    }
    if (!session) {
      failed(address, sessionId);
      return;
    }
    data.lapse = {
      sessionId: session.id,
      userId: session.userId,
      // Kept across a connection state recovery of the same session.
      connectedAt: prev?.sessionId === session.id ? prev.connectedAt : undefined,
      touchEvery: opts.touchInterval ?? defaultTouchEvery(session),
      expiresAt: session.expiresAt,
    };
    opts.verified.add(socket);
  };
  return (socket, next) => {
    if (opts.isClosed()) return next();
    authenticate(socket).then(
      () => next(),
      (err: Error) => next(err),
    );
  };
}
