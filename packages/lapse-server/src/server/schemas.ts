import { MAX_DURATION_MS } from 'lapse/internal';

/**
 * JSON schemas shared by the routes: Fastify validates with them, serializes responses with
 * them, and /openapi.json is generated from them. Plain objects, `as const` for inference.
 */

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

export const sessionSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    userId: { type: ['string', 'null'] },
    data: { description: 'Any JSON value' },
    createdAt: { type: 'number' },
    lastAccessedAt: { type: 'number' },
    expiresAt: { type: 'number' },
    absoluteExpiresAt: { type: 'number' },
    accessCount: { type: 'number' },
    version: { type: 'number' },
    status: { type: 'string', enum: ['active', 'locked', 'expired'] },
    lock: {
      type: ['object', 'null'],
      properties: { owner: { type: 'string' }, expiresAt: { type: 'number' } },
    },
    meta: { type: 'object', properties: { ip: { type: 'string' }, userAgent: { type: 'string' } } },
  },
} as const;

/** A duration in a body: milliseconds, or a string such as '30s' '5m' '6h' '7d' (at most 400 days; a lease ttl at most 1 day). */
export const durationSchema = {
  anyOf: [
    { type: 'integer', minimum: 1, maximum: MAX_DURATION_MS },
    { type: 'string', minLength: 1, maxLength: 32 },
  ],
} as const;

/** A token: `<id>.<secret>`. Any string is accepted here so every bad token answers the same 401. */
export const tokenBody = {
  type: 'object',
  required: ['token'],
  additionalProperties: false,
  properties: { token: { type: 'string', maxLength: 512 } },
} as const;

export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 256 } },
} as const;

export const userParams = {
  type: 'object',
  required: ['userId'],
  properties: { userId: { type: 'string', minLength: 1, maxLength: 256 } },
} as const;

export const sessionReply = { type: 'object', properties: { session: sessionSchema } } as const;
export const tokenReply = { type: 'object', properties: { token: { type: 'string' }, session: sessionSchema } } as const;
export const sessionsReply = {
  type: 'object',
  properties: { sessions: { type: 'array', items: sessionSchema } },
} as const;

/** A whole number in a query string (query values are text; bodies are never coerced). */
export const queryInt = (description: string) => ({ type: 'string', pattern: '^[0-9]{1,15}$', description }) as const;

/** preValidation hook for routes whose body is optional: no body reads as `{}`. */
export async function emptyBodyIsObject(request: { body: unknown }): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

/** The error responses a route can give, by status, for the schema's `response` map. */
export function errors(...statuses: number[]): Record<string, typeof errorSchema> {
  const out: Record<string, typeof errorSchema> = {};
  for (const s of [400, 401, ...statuses, 503]) out[String(s)] = errorSchema;
  return out;
}
