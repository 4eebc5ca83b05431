import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errors as lapseErrors, LapseError } from 'lapse/internal';
import type { CreateInput } from 'lapse/internal';
import { parseToken } from 'lapse/internal';
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

const invalidToken = lapseErrors.invalidToken;

/** The session id a token names, for the failure limit (null when it is not token-shaped). */
const sessionIdOf = (token: string): string | null => parseToken(token)?.id ?? null;

function tooMany(reply: FastifyReply, wait: number): FastifyReply {
  return reply
    .code(429)
    .header('retry-after', String(Math.ceil(wait / 1000)))
    .send({ error: { code: 'LAPSE_RATE_LIMITED', message: 'too many failed token checks from this address; retry later' } });
}

/**
 * The app's routes: create, validate, rotate and revoke by token. Every bad token answers
 * the same 401 (no oracle). Failures count against the caller's address and against the
 * (address, session id) pair, and past either budget a failure answers 429; every token is
 * still checked, so a valid token is never refused because of other requests' failures.
 */
export function sessionRoutes(ctx: LapseContext) {
  const { store, metrics, limiter } = ctx;

  /** Counts a failed check; true when it answered 429 (the address or the pair is now over its limit). */
  const failed = (request: FastifyRequest, reply: FastifyReply, token: string): boolean => {
    const wait = limiter?.fail(request.ip, sessionIdOf(token)) ?? 0;
    if (wait <= 0) return false;
    tooMany(reply, wait);
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
        const { token } = request.body;
        const started = performance.now();
        const session = await store.validate(token);
        metrics.observeValidate((performance.now() - started) / 1000, session !== null);
        if (!session) {
          if (failed(request, reply, token)) return reply;
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
        const { token } = request.body;
        try {
          return await store.rotate(token);
        } catch (err) {
          if (err instanceof LapseError && err.code === 'LAPSE_UNAUTHORIZED' && failed(request, reply, token)) return reply;
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
          response: { 204: { type: 'null' }, ...errors(429) },
        },
      },
      async (request, reply) => {
        const { token } = request.body;
        // Same answer for a dead token: logout is idempotent and tells nothing. A dead token is
        // still a failed check: guessing secrets through logout is limited like validate.
        if (!(await store.revoke(token)) && failed(request, reply, token)) return reply;
        return reply.code(204).send();
      },
    );
  };
}
