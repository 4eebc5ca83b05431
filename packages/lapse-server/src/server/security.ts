import helmet from '@fastify/helmet';
import Fastify, { type FastifyInstance } from 'fastify';

/**
 * Helmet's settings for the service. It speaks plain HTTP on loopback by default: no HSTS and
 * no upgrade of the admin page's requests to https (a TLS proxy in front may add both).
 */
const HELMET_OPTIONS = {
  global: true,
  strictTransportSecurity: false,
  // No 'unsafe-inline' anywhere: the console's scripts and styles are files of its own
  // (uPlot sets element styles through the CSSOM, which style-src does not restrict).
  contentSecurityPolicy: { directives: { upgradeInsecureRequests: null, styleSrc: ["'self'"], connectSrc: ["'self'"] } },
} as const;

const NOT_SECURITY = new Set(['content-type', 'content-length', 'date', 'connection', 'keep-alive']);

/**
 * The headers @fastify/helmet sends with these settings, computed once. Helmet rebuilds them
 * on every request; they never change here, so the service sets the precomputed set instead
 * (the largest per-request cost after the storage read, in bench/http.ts).
 */
export async function securityHeaders(): Promise<Record<string, string>> {
  const probe = Fastify();
  try {
    await probe.register(helmet, HELMET_OPTIONS);
    probe.get('/', async () => 'ok');
    const res = await probe.inject({ method: 'GET', url: '/' });
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (!NOT_SECURITY.has(k) && typeof v === 'string') out[k] = v;
    return out;
  } finally {
    await probe.close();
  }
}

/**
 * What every API response carries: the OWASP REST set. JSON holds session data, so no cache
 * may keep it; nothing may frame or sniff it; and a CSP that allows nothing keeps a response
 * opened in a browser inert. Helmet's browser-page headers (COOP, CORP, referrer and
 * download policies, ...) mean nothing to an API client and cost a header check each on
 * every request, so only the admin page gets the full set.
 */
export const API_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
});

/** Paths of the admin page and its assets, which get helmet's full set. */
export function isPagePath(url: string): boolean {
  return url === '/' || url.startsWith('/web/') || url.startsWith('/?');
}

/** Adds security headers to every response, errors and 404s included. */
export async function installSecurityHeaders(app: FastifyInstance): Promise<void> {
  const page = await securityHeaders();
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(isPagePath(request.url) ? page : API_HEADERS);
    done();
  });
}
