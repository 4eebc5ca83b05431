import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors } from 'lapse/internal';
import type { KeyIdentity, KeyRing } from './keys.js';

/** Who may call a route: any valid key, the admin key only, or anyone (the static admin page). */
export type Role = 'app' | 'admin' | 'public';

/**
 * Route config: the auth hook reads `role` (routes without one need the admin key: fail
 * closed); the OpenAPI document reads the rest.
 */
export interface RouteConfig {
  role?: Role;
  summary?: string;
  tags?: string[];
  /** Left out of /openapi.json. */
  hide?: boolean;
  /** The media type of a 2xx answer in /openapi.json, when not JSON (the console's event stream). */
  produces?: string;
}

/** Where a request keeps the key it authenticated with (a decorated field, not a WeakMap entry per request). */
const KEY = 'lapseKey';
type Keyed = FastifyRequest & { [KEY]: KeyIdentity | null };

/** The key a request authenticated with (undefined on public routes). */
export function keyOf(request: FastifyRequest): KeyIdentity | undefined {
  return (request as Keyed)[KEY] ?? undefined;
}

/** The role a route asks for. */
export function roleOf(request: FastifyRequest): Role {
  return (request.routeOptions.config as RouteConfig).role ?? 'admin';
}

/** The key in `Authorization: Bearer <key>`, or null. */
export function bearer(header: string | undefined): string | null {
  if (!header) return null;
  const space = header.indexOf(' ');
  if (space < 0 || header.slice(0, space).toLowerCase() !== 'bearer') return null;
  const key = header.slice(space + 1).trim();
  return key === '' ? null : key;
}

/**
 * Checks `Authorization: Bearer <key>` on every request: 401 without a valid key, 403 when an
 * app key calls an admin route. Unknown routes answer 404 whoever asks.
 */
export function installAuth(app: FastifyInstance, keys: KeyRing): void {
  app.decorateRequest(KEY, null);
  // Callback style: this runs on every request, and a promise per call is measurable.
  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    if (request.is404) return done();
    const role = roleOf(request);
    if (role === 'public') return done();
    const key = bearer(request.headers.authorization);
    const who = key === null ? null : keys.verify(key);
    if (!who) {
      reply.header('www-authenticate', 'Bearer realm="lapse"');
      return done(errors.unauthorized(key === null ? 'send Authorization: Bearer <key>' : 'unknown or revoked key'));
    }
    if (role === 'admin' && who.kind !== 'admin') return done(errors.forbidden('this route needs the admin key'));
    (request as Keyed)[KEY] = who;
    done();
  });
}
