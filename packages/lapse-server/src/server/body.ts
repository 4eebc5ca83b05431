import type { FastifyInstance, FastifyRequest } from 'fastify';

/**
 * JSON bodies as Fastify parses them (secure-json-parse: prototype poisoning refused), except
 * that an empty body is no body: many HTTP clients send `Content-Type: application/json` on
 * every request, DELETEs and bodiless POSTs included, and Fastify would answer those 400.
 */
export function installJsonBody(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request: FastifyRequest, body: string | Buffer, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.length === 0) return done(null, undefined);
    parse(request, text, done);
  });
}
