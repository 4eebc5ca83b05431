import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { OpenApiCollector } from '../openapi.js';

const VERSION = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

/** GET /openapi.json: the document generated from the route schemas. Any valid key may read it. */
export function openApiRoutes(collector: OpenApiCollector) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get('/openapi.json', { config: { role: 'app', hide: true } }, async () =>
      collector.document({ version: VERSION }),
    );
  };
}
