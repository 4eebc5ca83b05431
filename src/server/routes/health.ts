import type { FastifyInstance } from 'fastify';
import { backendError } from '../../errors.js';
import { type LapseContext, NO_CONNECTIONS } from '../context.js';
import { errors } from '../schemas.js';

const PING_TIMEOUT_MS = 2000;

const COUNTS = {
  totalSessions: { type: 'integer' },
  uniqueUsers: { type: 'integer' },
  activeRooms: { type: 'integer' },
  sessionsPerRoom: { type: 'object', additionalProperties: { type: 'integer' } },
} as const;

const healthSchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable'] },
    backend: { type: 'string' },
    uptimeMs: { type: 'number' },
    error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
  },
} as const;

/** Pings the backend, failing after a timeout so a hung backend cannot hang /health. */
async function ping(ctx: LapseContext): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
    timer.unref();
  });
  try {
    await Promise.race([Promise.resolve().then(() => ctx.store.backend.ping()), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Liveness with a backend ping, and the live-connection counts. Any valid key may ask. */
export function healthRoutes(ctx: LapseContext) {
  const started = ctx.clock.now();
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      '/health',
      {
        config: { role: 'app', summary: 'Liveness plus a backend ping: 200, or 503 when the backend is down', tags: ['health'] },
        schema: {
          response: { 200: healthSchema, 401: errors()['401'], 503: healthSchema },
        },
      },
      async (_request, reply) => {
        const backend = ctx.store.backend.name;
        const uptimeMs = ctx.clock.now() - started;
        try {
          if (ctx.store.closed) throw new Error('the store is closed');
          await ping(ctx);
          return { status: 'ok', backend, uptimeMs };
        } catch (err) {
          const e = backendError(err, `${backend} backend ping failed`);
          return reply.code(503).send({ status: 'unavailable', backend, uptimeMs, error: { code: e.code, message: e.message } });
        }
      },
    );

    app.get(
      '/health/connections',
      {
        config: { role: 'app', summary: 'Live Socket.IO connection counts: cluster-wide (exact, with a Redis backend) plus this node\'s own', tags: ['health'] },
        schema: {
          response: {
            200: {
              type: 'object',
              properties: {
                ...COUNTS,
                nodes: { type: 'integer' },
                node: { type: 'object', properties: { nodeId: { type: ['string', 'null'] }, ...COUNTS } },
              },
            },
            ...errors(),
          },
        },
      },
      async () => (ctx.connections ? await ctx.connections.stats() : NO_CONNECTIONS),
    );
  };
}
