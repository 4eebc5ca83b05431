import type { FastifyInstance } from 'fastify';
import { errors as lapseErrors, LapseError } from 'lapse/internal';
import type { LapseContext } from '../context.js';
import type { KeyRecord } from '../keys.js';
import { errors } from '../schemas.js';

const keySchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    kind: { type: 'string', enum: ['admin', 'app'] },
    createdAt: { type: 'number' },
    revokedAt: { type: ['number', 'null'] },
  },
} as const;

/** A key record without its hash. */
const view = (k: KeyRecord) => ({ id: k.id, name: k.name, kind: k.kind, createdAt: k.createdAt, revokedAt: k.revokedAt });

/** API keys (admin key only): list, make an app key (its value shown once), revoke an app key. */
export function keyRoutes(ctx: LapseContext) {
  const { keys } = ctx;
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      '/v1/keys',
      {
        config: { role: 'admin', summary: 'Every key of keys.json, revoked ones included (never a key or its hash)', tags: ['keys'] },
        schema: { response: { 200: { type: 'object', properties: { keys: { type: 'array', items: keySchema } } }, ...errors(403) } },
      },
      async () => ({ keys: keys.list().map(view) }),
    );

    app.post<{ Body: { name: string } }>(
      '/v1/keys',
      {
        config: { role: 'admin', summary: 'Make an app key; the answer is the only time it is shown', tags: ['keys'] },
        schema: {
          body: {
            type: 'object',
            required: ['name'],
            additionalProperties: false,
            properties: { name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' } },
          },
          response: { 201: { type: 'object', properties: { key: { type: 'string' }, record: keySchema } }, ...errors(403) },
        },
      },
      async (request, reply) => {
        const { key, record } = keys.create(request.body.name, 'app');
        return reply.code(201).send({ key, record: view(record) });
      },
    );

    app.delete<{ Params: { id: string } }>(
      '/v1/keys/:id',
      {
        config: { role: 'admin', summary: 'Revoke an app key by id (admin keys are revoked with `lapse keys revoke`)', tags: ['keys'] },
        schema: {
          params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } },
          response: { 204: { type: 'null' }, ...errors(403, 404) },
        },
      },
      async (request, reply) => {
        const hit = keys.list().find((k) => k.id === request.params.id && k.revokedAt === null);
        if (!hit) throw new LapseError('LAPSE_NOT_FOUND', 'no active key with that id');
        if (hit.kind !== 'app') throw lapseErrors.forbidden('an admin key is revoked with `lapse keys revoke`, not over HTTP');
        keys.revoke(hit.id);
        return reply.code(204).send();
      },
    );
  };
}
