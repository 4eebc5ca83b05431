import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LapseError } from '../../errors.js';
import type { CreateInput } from '../../input.js';
import type { LapseContext } from '../context.js';
import { durationSchema, emptyBodyIsObject, errors, sessionReply, tokenBody, tokenReply } from '../schemas.js';

const createBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    userId: { type: ['string', 'null'], minLength: 1, maxLength: 256 },
    data: { description: 'Any JSON value; default {}' },
    ip: { type: 'string', maxLength: 64 },
    userAgent: { type: 'string', maxLength: 512 },
    idleTimeout: durationSchema,
    absoluteTimeout: durationSchema,
  },
} as const;

const invalidToken = () => new LapseError('LAPSE_UNAUTHORIZED', 'invalid or expired session token');

/**
 * The app's routes: create, validate, rotate and revoke by token. Every bad token answers
 * the same 401 (no oracle), and failures count against the caller's address.
 */
export function sessionRoutes(ctx: LapseContext) {
  const { store, metrics, limiter } = ctx;

  /** 429 while the caller's address has used up its failed checks. */
  const limited = (request: FastifyRequest, reply: FastifyReply): boolean => {
    const wait = limiter?.retryAfter(request.ip) ?? 0;
    if (wait <= 0) return false;
    reply
      .code(429)
      .header('retry-after', String(Math.ceil(wait / 1000)))
      .send({ error: { code: 'LAPSE_RATE_LIMITED', message: 'too many failed token checks from this address; retry later' } });
    return true;
  };

  return async function plugin(app: FastifyInstance): Promise<void> {
    app.post<{ Body: CreateInput | undefined }>(
      '/v1/sessions',
      {
        config: { role: 'app', summary: 'Create a session; the token is returned once', tags: ['sessions'] },
        preValidation: emptyBodyIsObject,
        schema: {
          body: createBody,
          response: { 201: tokenReply, ...errors(413) },
        },
      },
      async (request, reply) => {
        const created = await store.create(request.body ?? {});
        return reply.code(201).send(created);
      },
    );

    app.post<{ Body: { token: string } }>(
      '/v1/sessions/validate',
      {
        config: { role: 'app', summary: 'Validate a token (counts an access); 401 for every kind of bad token', tags: ['sessions'] },
        schema: {
          body: tokenBody,
          response: { 200: sessionReply, ...errors(429) },
        },
      },
      async (request, reply) => {
        if (limited(request, reply)) return reply;
        const started = performance.now();
        const session = await store.validate(request.body.token);
        metrics.observeValidate((performance.now() - started) / 1000, session !== null);
        if (!session) {
          limiter?.fail(request.ip);
          throw invalidToken();
        }
        return { session };
      },
    );

    app.post<{ Body: { token: string } }>(
      '/v1/sessions/rotate',
      {
        config: { role: 'app', summary: 'Give a session a new token; the old one is dead at once', tags: ['sessions'] },
        schema: {
          body: tokenBody,
          response: { 200: tokenReply, ...errors(423, 429) },
        },
      },
      async (request, reply) => {
        if (limited(request, reply)) return reply;
        try {
          return await store.rotate(request.body.token);
        } catch (err) {
          if (err instanceof LapseError && err.code === 'LAPSE_UNAUTHORIZED') limiter?.fail(request.ip);
          throw err;
        }
      },
    );

    app.post<{ Body: { token: string } }>(
      '/v1/sessions/revoke',
      {
        config: { role: 'app', summary: 'End the session behind a token (logout); 204 whether or not it was live', tags: ['sessions'] },
        schema: {
          body: tokenBody,
          response: { 204: { type: 'null' }, ...errors() },
        },
      },
      async (request, reply) => {
        // Same answer for a dead token: logout is idempotent and tells nothing.
        await store.revoke(request.body.token);
        return reply.code(204).send();
      },
    );
  };
}
