import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * CORS for the configured origins only (off when the list is empty): answers preflights and
 * marks allowed responses. Credentials are not allowed: browsers send the key as a header.
 */
export function installCors(app: FastifyInstance, origins: string[]): void {
  if (origins.length === 0) return;
  const any = origins.includes('*');
  const allowed = new Set(origins);
  const allow = (request: FastifyRequest, reply: FastifyReply): boolean => {
    const origin = request.headers.origin;
    if (!origin || (!any && !allowed.has(origin))) return false;
    reply.header('access-control-allow-origin', any ? '*' : origin);
    reply.header('vary', 'Origin');
    return true;
  };
  app.addHook('onRequest', async (request, reply) => {
    allow(request, reply);
  });
  app.options('/*', { config: { role: 'public', hide: true } }, async (request, reply) => {
    if (allow(request, reply)) {
      reply.header('access-control-allow-methods', 'GET, POST, PATCH, DELETE');
      reply.header('access-control-allow-headers', 'authorization, content-type');
      reply.header('access-control-max-age', '600');
    }
    return reply.code(204).send();
  });
}
