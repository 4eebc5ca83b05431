import type { FastifyInstance } from 'fastify';
import type { LapseContext } from '../context.js';
import { errors } from '../schemas.js';

const count = { type: 'integer' } as const;

/** The store's counts (no scan) and this node's event counters, for the admin page. */
export function statsRoutes(ctx: LapseContext) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      '/v1/stats',
      {
        config: { role: 'admin', summary: "The store's counts and this node's event counters", tags: ['admin'] },
        schema: {
          response: {
            200: {
              type: 'object',
              properties: {
                sessions: count, users: count, locked: count, created: count, expired: count, evicted: count,
                revoked: count, rotated: count, validations: count, backendErrors: count, updateRetries: count,
              },
            },
            ...errors(403),
          },
        },
      },
      async () => ctx.store.stats(),
    );
  };
}
