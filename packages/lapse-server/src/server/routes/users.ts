import type { FastifyInstance } from 'fastify';
import type { LapseContext } from '../context.js';
import { errors, sessionsReply, userParams } from '../schemas.js';

/** A user's sessions: list them ("your devices"), revoke them all ("log out everywhere"). */
export function userRoutes(ctx: LapseContext) {
  const { store } = ctx;
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get<{ Params: { userId: string } }>(
      '/v1/users/:userId/sessions',
      {
        config: { role: 'admin', summary: "A user's live sessions, most recently used first", tags: ['users'] },
        schema: {
          params: userParams,
          response: { 200: sessionsReply, ...errors(403) },
        },
      },
      async (request) => ({ sessions: await store.listUser(request.params.userId) }),
    );

    app.delete<{ Params: { userId: string }; Querystring: { except?: string } }>(
      '/v1/users/:userId/sessions',
      {
        config: { role: 'app', summary: 'Revoke every session of a user, optionally keeping one', tags: ['users'] },
        schema: {
          params: userParams,
          querystring: {
            type: 'object',
            properties: { except: { type: 'string', minLength: 1, maxLength: 256, description: 'A session id to keep' } },
          },
          response: { 200: { type: 'object', properties: { revoked: { type: 'integer' } } }, ...errors() },
        },
      },
      async (request) => {
        const opts = request.query.except === undefined ? {} : { except: request.query.except };
        return { revoked: await store.revokeUser(request.params.userId, opts) };
      },
    );
  };
}
