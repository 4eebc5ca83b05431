import type { FastifyInstance } from 'fastify';
import { errors as lapseErrors } from 'lapse/internal';
import type { LapseContext } from '../context.js';
import { errors, idParams, queryInt, sessionReply, sessionSchema } from '../schemas.js';

const fenceQuery = {
  type: 'object',
  properties: { fence: queryInt('Fencing number of a lease you hold') },
} as const;

const notFound = (id: string) => lapseErrors.notFound(id);

/** Sessions by id: the admin listing and view, updates, and delete (revoke by id). */
export function adminSessionRoutes(ctx: LapseContext) {
  const { store } = ctx;
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get<{ Querystring: { cursor?: string; limit?: string } }>(
      '/v1/sessions',
      {
        config: { role: 'admin', summary: 'List live sessions a page at a time, in id order', tags: ['admin'] },
        schema: {
          querystring: {
            type: 'object',
            properties: {
              cursor: { type: 'string', minLength: 1, maxLength: 256, description: 'The cursor of the previous page' },
              limit: queryInt('Sessions per page, 1-1000 (default 100)'),
            },
          },
          response: {
            200: {
              type: 'object',
              properties: {
                sessions: { type: 'array', items: sessionSchema },
                cursor: { type: ['string', 'null'], description: 'Pass it to get the next page; null on the last one' },
              },
            },
            ...errors(403),
          },
        },
      },
      async (request) => {
        const limit = request.query.limit === undefined ? 100 : Number(request.query.limit);
        if (limit < 1 || limit > 1000) throw lapseErrors.inputMustBe('limit', '1-1000');
        return store.page({ cursor: request.query.cursor ?? null, limit });
      },
    );

    app.get<{ Params: { id: string } }>(
      '/v1/sessions/:id',
      {
        config: { role: 'admin', summary: 'One session by id, counting no access', tags: ['admin'] },
        schema: {
          params: idParams,
          response: { 200: sessionReply, ...errors(403, 404) },
        },
      },
      async (request) => {
        const session = await store.get(request.params.id);
        if (!session) throw notFound(request.params.id);
        return { session };
      },
    );

    app.patch<{ Params: { id: string }; Body: { data: unknown; expectedVersion?: number; fence?: number } }>(
      '/v1/sessions/:id',
      {
        config: { role: 'admin', summary: "Replace a session's data; optionally only at an expected version or under your lease", tags: ['admin'] },
        schema: {
          params: idParams,
          body: {
            type: 'object',
            required: ['data'],
            additionalProperties: false,
            properties: {
              data: { description: 'Any JSON value' },
              expectedVersion: { type: 'integer', minimum: 1 },
              fence: { type: 'integer', minimum: 0 },
            },
          },
          response: { 200: sessionReply, ...errors(403, 404, 409, 413, 423) },
        },
      },
      async (request) => {
        const { data, expectedVersion, fence } = request.body;
        // A value, never a function: the store would call a function with the previous data.
        const session = await store.update(request.params.id, data as object, { expectedVersion, lease: fence });
        return { session };
      },
    );

    app.delete<{ Params: { id: string }; Querystring: { fence?: string } }>(
      '/v1/sessions/:id',
      {
        config: { role: 'app', summary: 'Revoke a session by id; a lease blocks it unless you pass its fence', tags: ['sessions'] },
        schema: {
          params: idParams,
          querystring: fenceQuery,
          response: { 204: { type: 'null' }, ...errors(404, 423) },
        },
      },
      async (request, reply) => {
        const fence = request.query.fence === undefined ? undefined : Number(request.query.fence);
        const removed = await store.delete(request.params.id, { lease: fence });
        if (!removed) throw notFound(request.params.id);
        return reply.code(204).send();
      },
    );
  };
}
