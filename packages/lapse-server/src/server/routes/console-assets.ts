import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';
import { LapseError } from 'lapse/internal';

/**
 * Browser libraries the console uses, served from the service's own dependencies (no CDN):
 * uPlot for the charts. Read once, on first request.
 */
const require = createRequire(import.meta.url);
const VENDOR: Record<string, { path: () => string; type: string }> = {
  'uplot.js': { path: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uplot.css': { path: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

const cache = new Map<string, Buffer>();

function load(file: string): Buffer | null {
  const entry = VENDOR[file];
  if (!entry) return null;
  let body = cache.get(file);
  if (!body) {
    body = readFileSync(entry.path());
    cache.set(file, body);
  }
  return body;
}

export function consoleAssetRoutes() {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get<{ Params: { file: string } }>(
      '/web/vendor/:file',
      { config: { role: 'public', hide: true } },
      async (request, reply) => {
        const body = load(request.params.file);
        if (!body) throw new LapseError('LAPSE_NOT_FOUND', 'no such file');
        return reply.type((VENDOR[request.params.file] as { type: string }).type).header('cache-control', 'public, max-age=3600').send(body);
      },
    );
  };
}
