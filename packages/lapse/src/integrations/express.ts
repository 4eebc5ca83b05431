import type { NextFunction, Request, Response } from 'express';
import { type HttpSessionOptions, loadSession, type RequestSession, resolveHttpOptions } from './common.js';

export type { HttpSessionOptions, RequestSession } from './common.js';

declare global {
  namespace Express {
    interface Request {
      /** The Lapse session of this request: `req.lapse.session`, `login()`, `logout()`, `update()`, `rotate()`. */
      lapse: RequestSession;
    }
  }
}

/**
 * Express middleware: validates the session cookie (or Bearer token) on every request.
 * A failing backend goes to `next(err)` with `err.status = 503`, never to "logged out".
 * @example
 * app.use(lapse({ store }));
 * app.post('/login', async (req, res) => { await req.lapse.login({ userId: 'u1' }); res.sendStatus(204); });
 * app.get('/me', (req, res) => res.json(req.lapse.session ?? { anonymous: true }));
 */
export function lapse(options: HttpSessionOptions) {
  const o = resolveHttpOptions(options);
  return function lapseSession(req: Request, res: Response, next: NextFunction): void {
    loadSession(req.headers, o, (cookie) => res.append('Set-Cookie', cookie)).then(
      (handle) => {
        req.lapse = handle;
        next();
      },
      next,
    );
  };
}
