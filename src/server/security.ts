import helmet from '@fastify/helmet';
import Fastify, { type FastifyInstance } from 'fastify';

/**
 * Helmet's settings for the service. It speaks plain HTTP on loopback by default: no HSTS and
 * no upgrade of the admin page's requests to https (a TLS proxy in front may add both).
 */
const HELMET_OPTIONS = {
  global: true,
  strictTransportSecurity: false,
  contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
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

/** Adds the security headers to every response, errors and 404s included. */
export async function installSecurityHeaders(app: FastifyInstance): Promise<void> {
  const headers = await securityHeaders();
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(headers);
    done();
  });
}
