import { parse as parseCookie, serialize as serializeCookie, type SerializeOptions as CookieSerializeOptions } from 'cookie';
import { errors, LapseError } from '../core/errors.js';
import type { CreateInput } from '../core/input.js';
import type { Session } from '../core/session.js';
import type { SessionStore } from '../core/store.js';
import { UPDATE_BASIS } from '../core/update-queue.js';

/** Options shared by the Express middleware and the Fastify plugin. */
export interface HttpSessionOptions {
  store: SessionStore;
  /** Cookie that carries the token; default 'lapse_session'. */
  cookieName?: string;
  /** Cookie attributes; defaults: httpOnly, sameSite 'lax', path '/', secure in production. */
  cookie?: CookieSerializeOptions;
  /** Also accept `Authorization: Bearer <token>` (APIs, mobile apps); default true. */
  bearer?: boolean;
  /**
   * login() always ends the request's session and issues a new token (the session fixation
   * defence), so only `true` is accepted; `false` is LAPSE_INVALID_OPTION.
   */
  rotateOnLogin?: true;
}

export interface ResolvedHttpOptions {
  store: SessionStore;
  cookieName: string;
  cookie: CookieSerializeOptions;
  bearer: boolean;
}

/** Fills defaults; refuses what would weaken the session handling. */
export function resolveHttpOptions(o: HttpSessionOptions): ResolvedHttpOptions {
  if (o.rotateOnLogin !== undefined && o.rotateOnLogin !== true) {
    throw new LapseError('LAPSE_INVALID_OPTION', 'rotateOnLogin cannot be turned off: login() always issues a new token');
  }
  return {
    store: o.store,
    cookieName: o.cookieName ?? 'lapse_session',
    cookie: { httpOnly: true, sameSite: 'lax', path: '/', secure: process.env.NODE_ENV === 'production', ...o.cookie },
    bearer: o.bearer ?? true,
  };
}

/** The token of a request: the session cookie first, then a Bearer header. */
export function tokenFrom(headers: { cookie?: string; authorization?: string }, o: ResolvedHttpOptions): string | null {
  if (headers.cookie) {
    const value = parseCookie(headers.cookie)[o.cookieName];
    if (value) return value;
  }
  if (o.bearer && headers.authorization?.startsWith('Bearer ')) return headers.authorization.slice(7).trim();
  return null;
}

/**
 * What a request handler uses: the current session and the actions that change it.
 * `setCookie` is given by the framework adapter.
 */
export class RequestSession {
  /** The validated session of this request, or null. */
  session: Session | null;
  private token: string | null;

  constructor(
    private readonly o: ResolvedHttpOptions,
    token: string | null,
    session: Session | null,
    private readonly setCookie: (header: string) => void,
  ) {
    this.token = session ? token : null;
    this.session = session;
  }

  /**
   * The validated session of this request, or a `LapseError` `LAPSE_UNAUTHORIZED` (status 401)
   * when there is none, so that Express's and Fastify's error handlers answer the route with
   * 401 instead of failing (500) on a null session.
   * @example
   * app.get('/devices', async (req, res) => res.json(await store.listUser(req.lapse.require().userId!)));
   */
  require(): Session {
    if (!this.session) throw noSession();
    return this.session;
  }

  /**
   * Starts a session for a user and sets the cookie; returns the token. The request's
   * session, if any, is ended first (revoked): a token that existed before login never
   * becomes a logged-in one (session fixation).
   */
  async login(input: CreateInput = {}): Promise<string> {
    if (this.token) await this.o.store.revoke(this.token);
    const { token, session } = await this.o.store.create(input);
    this.adopt(token, session);
    return token;
  }

  /** Ends the session (revoked) and clears the cookie. */
  async logout(): Promise<boolean> {
    const had = this.token ? await this.o.store.revoke(this.token) : false;
    this.token = null;
    this.session = null;
    this.setCookie(serializeCookie(this.o.cookieName, '', { ...this.o.cookie, maxAge: 0, expires: new Date(0) }));
    return had;
  }

  /**
   * Replaces the session's data (or derives it with a function). A function runs on the session
   * this request validated (or on what this process wrote since), written only if it is still
   * that version; when another process wrote in between, the store reads the latest and runs it
   * again. Concurrent requests of one session queue and are written together: no read, and no
   * update lost.
   */
  async update<T>(data: T | ((prev: T) => T | Promise<T>)): Promise<Session<T>> {
    const current = this.session;
    if (!current) throw noSession();
    let next: Session<T>;
    if (typeof data === 'function') {
      // Starts from the session this request validated unless this process wrote it since
      // (then from that write); a stale start is retried from a fresh read, never lost.
      next = await this.o.store.update<T>(current.id, data as (prev: T) => T | Promise<T>, { [UPDATE_BASIS]: current });
    } else {
      next = await this.o.store.update<T>(current.id, data);
    }
    this.session = next;
    return next;
  }

  /** New id and secret for the same session (after a privilege change); sets the cookie. */
  async rotate(): Promise<string> {
    if (!this.token) throw noSession();
    const { token, session } = await this.o.store.rotate(this.token);
    this.adopt(token, session);
    return token;
  }

  private adopt(token: string, session: Session): void {
    this.token = token;
    this.session = session;
    const maxAge = Math.max(0, Math.floor((session.absoluteExpiresAt - Date.now()) / 1000));
    this.setCookie(serializeCookie(this.o.cookieName, token, { ...this.o.cookie, maxAge }));
  }
}

/** What update() and rotate() throw on a request without a valid session (HTTP 401). */
function noSession(): LapseError {
  return errors.unauthorized('no session on this request: log in first');
}

/** Validates the token of a request; a backend failure throws (never "no session"). */
export async function loadSession(
  headers: { cookie?: string; authorization?: string },
  o: ResolvedHttpOptions,
  setCookie: (header: string) => void,
): Promise<RequestSession> {
  const token = tokenFrom(headers, o);
  const session = token ? await o.store.validate(token) : null;
  return new RequestSession(o, token, session, setCookie);
}
