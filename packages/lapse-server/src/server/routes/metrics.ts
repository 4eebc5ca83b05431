import type { FastifyInstance } from 'fastify';
import type { LapseContext } from '../context.js';

/** Prometheus text. Any valid key may scrape. */
export function metricsRoutes(ctx: LapseContext) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      '/metrics',
      {
        config: { role: 'app', summary: 'Prometheus metrics (text exposition format)', tags: ['health'] },
      },
      async (_request, reply) => {
        const text = await ctx.metrics.render();
        return reply.type(ctx.metrics.contentType).send(text);
      },
    );
  };
}
