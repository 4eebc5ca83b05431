import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { LapseError } from 'lapse/internal';

/** The package's web/ folder: the same place from src/server/routes and dist/server/routes. */
const WEB_DIR = new URL('../../../web/', import.meta.url);

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

const PLACEHOLDER = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lapse</title></head>
<body><h1>Lapse</h1><p>The service is running. The admin page is not installed;
the HTTP API is described at <code>/openapi.json</code> (send your key as <code>Authorization: Bearer …</code>).</p></body></html>
`;

/**
 * The admin web page and its assets from web/. Public: the page holds no data and asks for
 * the admin key, which it sends with each API call. Only flat file names are served.
 */
export function webRoutes() {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get('/', { config: { role: 'public', hide: true } }, async (_request, reply) => {
      const html = await readFile(new URL('index.html', WEB_DIR), 'utf8').catch(() => PLACEHOLDER);
      return reply.type(TYPES['.html'] as string).send(html);
    });

    app.get<{ Params: { file: string } }>(
      '/web/:file',
      {
        config: { role: 'public', hide: true },
        schema: { params: { type: 'object', properties: { file: { type: 'string', pattern: '^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,100}$' } } } },
      },
      async (request, reply) => {
        const { file } = request.params;
        const type = TYPES[extname(file)];
        if (!type || file.includes('..')) throw new LapseError('LAPSE_NOT_FOUND', 'no such file');
        const body = await readFile(new URL(file, WEB_DIR)).catch(() => null);
        if (!body) throw new LapseError('LAPSE_NOT_FOUND', 'no such file');
        return reply.type(type).send(body);
      },
    );
  };
}
