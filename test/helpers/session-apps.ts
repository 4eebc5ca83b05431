/**
 * The same small app on express-session and on @fastify/session, for any store: login
 * (regenerate, then the user under passport.user), read, write one key, delete one key,
 * destroy. Tests, the migration tests and the bench drive these over real HTTP.
 */
import type { AddressInfo } from 'node:net';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import express from 'express';
import session, { type Store } from 'express-session';
import Fastify from 'fastify';

export const SECRET = 'a-test-secret-that-is-at-least-32-chars-long';
export const MAX_AGE = 24 * 3_600_000;

export interface RunningApp {
  url: string;
  /** Errors the app saw, including a failed save after the response began (express-session). */
  errors: string[];
  close(): Promise<void>;
}

type Bag = Record<string, unknown> & { passport?: { user?: string } };

/** An express-session app on `store`, listening on a free loopback port. */
export async function expressSessionApp(store: Store, maxAge = MAX_AGE): Promise<RunningApp> {
  const app = express();
  app.use(session({ store, secret: SECRET, resave: false, saveUninitialized: false, cookie: { maxAge } }));
  app.get('/me', (req, res) => {
    const s = req.session as unknown as Bag;
    res.json({ user: s.passport?.user ?? null, data: s, expiresIsDate: req.session.cookie.expires instanceof Date });
  });
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      (req.session as unknown as Bag).passport = { user: String(req.query.user ?? 'alice') };
      res.json({ id: req.sessionID });
    });
  });
  app.post('/set', (req, res) => {
    (req.session as unknown as Bag)[String(req.query.k)] = req.query.v;
    res.json({ ok: true });
  });
  app.post('/del', (req, res) => {
    delete (req.session as unknown as Bag)[String(req.query.k)];
    res.json({ ok: true });
  });
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.json({ ok: true })));
  });
  const errors: string[] = [];
  app.use((err: Error & { code?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    errors.push(err.code ?? err.message);
    if (!res.headersSent) res.status(500).json({ error: err.code ?? err.message });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    errors,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A @fastify/session app (with @fastify/cookie) on `store`, listening on a free loopback port. */
export async function fastifySessionApp(store: unknown, maxAge = MAX_AGE): Promise<RunningApp> {
  const app = Fastify();
  await app.register(fastifyCookie);
  await app.register(fastifySession, {
    store: store as fastifySession.FastifySessionOptions['store'],
    secret: SECRET,
    saveUninitialized: false,
    cookie: { maxAge, secure: false },
  });
  app.get('/me', async (req) => {
    const s = req.session as unknown as Bag;
    const { cookie: _c, ...data } = s;
    return { user: s.passport?.user ?? null, data, expiresIsDate: req.session.cookie.expires instanceof Date };
  });
  app.post('/login', async (req) => {
    await req.session.regenerate();
    (req.session as unknown as Bag).passport = { user: String((req.query as Bag).user ?? 'alice') };
    return { id: req.session.sessionId };
  });
  app.post('/set', async (req) => {
    const q = req.query as Record<string, string>;
    (req.session as unknown as Bag)[String(q.k)] = q.v;
    return { ok: true };
  });
  app.post('/del', async (req) => {
    delete (req.session as unknown as Bag)[String((req.query as Bag).k)];
    return { ok: true };
  });
  app.post('/logout', async (req) => {
    await req.session.destroy();
    return { ok: true };
  });
  const errors: string[] = [];
  app.setErrorHandler((err: Error & { code?: string }, _req, reply) => {
    errors.push(err.code ?? err.message);
    void reply.status(500).send({ error: err.code ?? err.message });
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url, errors, close: () => app.close() };
}

/** The `name=value` of the session cookie a response set, or '' when it set none. */
export function sessionCookie(res: Response, name: string): string {
  const raw = res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`));
  return (raw ?? '').split(';')[0] as string;
}

/** The session id inside a signed express-session or @fastify/session cookie. */
export function sidOf(cookie: string): string {
  const value = decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1));
  const unsigned = value.startsWith('s:') ? value.slice(2) : value;
  return unsigned.slice(0, unsigned.lastIndexOf('.'));
}
