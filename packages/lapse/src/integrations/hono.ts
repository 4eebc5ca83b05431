import type { MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { LapseError } from '../core/errors.js';
import { type HttpSessionOptions, loadSession, type RequestSession, resolveHttpOptions } from './common.js';

export type { HttpSessionOptions, RequestSession } from './common.js';

/** The Hono env this middleware adds: `c.get('lapse')`. */
export interface LapseEnv {
  Variables: { lapse: RequestSession };
}

declare module 'hono' {
  interface ContextVariableMap {
    /** The Lapse session of this request: `c.get('lapse').session`, `login()`, `logout()`, `update()`, `rotate()`. */
    lapse: RequestSession;
  }
}

/**
 * Hono middleware: validates the session cookie (or Bearer token) on every request.
 * A failing backend is an HTTPException with the LapseError's status (503), never "logged out".
 * @example
 * app.use(lapse({ store }));
 * app.post('/login', async (c) => { await c.get('lapse').login({ userId: 'u1' }); return c.body(null, 204); });
 * app.get('/me', (c) => c.json(c.get('lapse').session ?? { anonymous: true }));
 */
export function lapse(options: HttpSessionOptions): MiddlewareHandler<LapseEnv> {
  const o = resolveHttpOptions(options);
  return async (c, next) => {
    const headers = { cookie: c.req.header('cookie'), authorization: c.req.header('authorization') };
    let handle: RequestSession;
    try {
      handle = await loadSession(headers, o, (cookie) => c.header('Set-Cookie', cookie, { append: true }));
    } catch (err) {
      const status = (err instanceof LapseError ? err.status : 503) as ContentfulStatusCode;
      // Loaded as ESM on first failure, so it is the very class the app's hono checks against.
      const { HTTPException } = await import('hono/http-exception');
      throw new HTTPException(status, { message: err instanceof LapseError ? err.code : 'LAPSE_BACKEND_UNAVAILABLE', cause: err });
    }
    c.set('lapse', handle);
    await next();
  };
}
