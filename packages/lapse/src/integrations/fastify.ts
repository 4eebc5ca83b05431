import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { type HttpSessionOptions, loadSession, type RequestSession, resolveHttpOptions } from './common.js';

export type { HttpSessionOptions, RequestSession } from './common.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The Lapse session of this request: `request.lapse.session`, `login()`, `logout()`, `update()`, `rotate()`. */
    lapse: RequestSession;
  }
}

/**
 * Fastify plugin: validates the session cookie (or Bearer token) before each handler.
 * A failing backend is a LapseError with status 503, never "logged out". The store is
 * closed with the app unless `closeStore: false`.
 * @example
 * await app.register(lapsePlugin, { store });
 * app.get('/me', async (req) => req.lapse.session ?? { anonymous: true });
 */
export const lapsePlugin: FastifyPluginAsync<HttpSessionOptions & { closeStore?: boolean }> = async (app, options) => {
  const o = resolveHttpOptions(options);
  app.decorateRequest('lapse', null as unknown as RequestSession);
  app.addHook('onRequest', async (request, reply) => {
    request.lapse = await loadSession(request.headers, o, (cookie) => {
      const prev = reply.getHeader('set-cookie');
      const list = prev === undefined ? [] : Array.isArray(prev) ? prev.map(String) : [String(prev)];
      reply.header('set-cookie', [...list, cookie]);
    });
  });
  if (options.closeStore !== false) app.addHook('onClose', async () => o.store.close());
};

// Let the decorators escape the plugin's encapsulation, like fastify-plugin does.
(lapsePlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
(lapsePlugin as unknown as Record<symbol, string>)[Symbol.for('fastify.display-name')] = 'lapse';

/** Registers the plugin on an app (shorthand for app.register(lapsePlugin, options)). */
export async function registerLapse(app: FastifyInstance, options: HttpSessionOptions & { closeStore?: boolean }): Promise<void> {
  await app.register(lapsePlugin, options);
}
