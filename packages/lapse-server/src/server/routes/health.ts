import type { FastifyInstance } from 'fastify';
import { backendError } from 'lapse/internal';
import { bearer } from '../auth.js';
import { type LapseContext, NO_CONNECTIONS } from '../context.js';
import { errors } from '../schemas.js';

const CHECK_TIMEOUT_MS = 2000;

const COUNTS = {
  totalSessions: { type: 'integer' },
  uniqueUsers: { type: 'integer' },
  activeRooms: { type: 'integer' },
  sessionsPerRoom: { type: 'object', additionalProperties: { type: 'integer' } },
} as const;

const healthSchema = {
  type: 'object',
  required: ['status'],
  properties: {
    status: { type: 'string', enum: ['ok', 'unavailable'] },
    backend: { type: 'string' },
    uptimeMs: { type: 'number' },
    reads: { type: 'boolean', description: 'The backend answered a ping' },
    writes: { type: 'boolean', description: 'The backend keeps writes (its own report; a probe write after a recent failure)' },
    error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
  },
} as const;

/** Runs `fn`, failing after a timeout so a hung backend cannot hang /health. */
async function withTimeout<T>(fn: () => T | Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
    timer.unref();
  });
  try {
    return await Promise.race([Promise.resolve().then(fn), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads (a ping) and writes (see SessionStore.writeHealth), each with its failure. */
async function check(ctx: LapseContext): Promise<{ reads: boolean; writes: boolean; error: Error | null }> {
  if (ctx.store.closed) return { reads: false, writes: false, error: new Error('the store is closed') };
  const name = ctx.store.backend.name;
  try {
    await withTimeout(() => ctx.store.backend.ping());
  } catch (err) {
    return { reads: false, writes: false, error: backendError(err, `${name} backend ping failed`) };
  }
  try {
    const w = await withTimeout(() => ctx.store.writeHealth());
    return { reads: true, writes: w.writable, error: w.writable ? null : new Error(w.reason ?? `${name} backend cannot keep writes`) };
  } catch (err) {
    return { reads: true, writes: false, error: backendError(err, `${name} backend write check failed`) };
  }
}

/**
 * /health: public and minimal for probes and load balancers (200 ok, or 503 when the backend
 * cannot serve reads or writes); with a valid key, the details. And the live-connection counts.
 */
export function healthRoutes(ctx: LapseContext) {
  const started = ctx.clock.now();
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      '/health',
      {
        config: { role: 'public', summary: 'Liveness: 200, or 503 when the backend cannot serve reads or writes; details with a key', tags: ['health'] },
        schema: {
          response: { 200: healthSchema, 503: healthSchema },
        },
      },
      async (request, reply) => {
        const { reads, writes, error } = await check(ctx);
        const status = reads && writes ? 'ok' : 'unavailable';
        reply.code(status === 'ok' ? 200 : 503);
        const key = bearer(request.headers.authorization);
        // Anyone may ask; only a caller with a key learns more than up or down.
        if (key === null || !ctx.keys.verify(key)) return { status };
        const e = error === null ? null : backendError(error, error.message);
        return {
          status,
          backend: ctx.store.backend.name,
          uptimeMs: ctx.clock.now() - started,
          reads,
          writes,
          ...(e ? { error: { code: e.code, message: e.message } } : {}),
        };
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
