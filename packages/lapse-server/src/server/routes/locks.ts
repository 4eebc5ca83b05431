import type { FastifyInstance } from 'fastify';
import type { Duration } from 'lapse/internal';
import { LapseError } from 'lapse/internal';
import { inputDuration } from 'lapse/internal';
import type { LapseContext } from '../context.js';
import { durationSchema, emptyBodyIsObject, errors, idParams } from '../schemas.js';

const MAX_WAIT_MS = 30_000;

/** Leases over HTTP: take one (with its fencing number), release it by fence. */
export function lockRoutes(ctx: LapseContext) {
  const { store } = ctx;
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.post<{ Params: { id: string }; Body: { owner?: string; ttl?: Duration; wait?: Duration } | undefined }>(
      '/v1/sessions/:id/lock',
      {
        config: { role: 'admin', summary: 'Take a lease on a session; 423 while someone else holds one', tags: ['locks'] },
        preValidation: emptyBodyIsObject,
        schema: {
          params: idParams,
          body: {
            type: 'object',
            additionalProperties: false,
            properties: {
              owner: { type: 'string', minLength: 1, maxLength: 256 },
              ttl: durationSchema,
              wait: { ...durationSchema, description: `Wait up to this long for a release (at most ${MAX_WAIT_MS} ms)` },
            },
          },
          response: {
            200: {
              type: 'object',
              properties: { fence: { type: 'integer' }, owner: { type: 'string' }, expiresAt: { type: 'number' } },
            },
            ...errors(403, 404, 423),
          },
        },
      },
      async (request) => {
        const { owner, ttl, wait } = request.body ?? {};
        const opts: { owner?: string; ttl?: Duration; wait?: Duration } = {};
        if (owner !== undefined) opts.owner = owner;
        if (ttl !== undefined) opts.ttl = ttl;
        if (wait !== undefined) opts.wait = capWait(wait);
        const lease = await store.lock(request.params.id, opts);
        return { fence: lease.fence, owner: lease.owner, expiresAt: lease.expiresAt };
      },
    );

    app.delete<{ Params: { id: string }; Body: { fence: number } }>(
      '/v1/sessions/:id/lock',
      {
        config: { role: 'admin', summary: 'Release the lease with this fence; 404 when it is no longer the lease in force', tags: ['locks'] },
        schema: {
          params: idParams,
          body: {
            type: 'object',
            required: ['fence'],
            additionalProperties: false,
            properties: { fence: { type: 'integer', minimum: 0 } },
          },
          response: { 204: { type: 'null' }, ...errors(403, 404) },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        const released = await store.unlock(id, request.body.fence);
        if (!released) throw new LapseError('LAPSE_NOT_FOUND', `no lease with fence ${request.body.fence} in force on session ${id}`);
        return reply.code(204).send();
      },
    );
  };
}

function capWait(wait: Duration): number {
  const ms = inputDuration(wait, 'wait');
  if (ms > MAX_WAIT_MS) throw new LapseError('LAPSE_INVALID_INPUT', `wait is at most ${MAX_WAIT_MS} ms`);
  return ms;
}
