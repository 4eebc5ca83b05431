/**
 * Response schemas of the console's API, for /openapi.json and Fastify's serializer. Every
 * object keeps additionalProperties: a field the console adds later is sent, not dropped,
 * before the schema here names it.
 */
import { jobSchema } from './jobs.js';

const num = { type: 'number' } as const;
const int = { type: 'integer' } as const;
const str = { type: 'string' } as const;
const strOrNull = { type: ['string', 'null'] } as const;
const numOrNull = { type: ['number', 'null'] } as const;

function object<P extends Record<string, unknown>>(properties: P, description?: string) {
  return { type: 'object', additionalProperties: true, ...(description ? { description } : {}), properties } as const;
}

export const figuresSchema = object(
  {
    at: num,
    node: { type: 'string', description: 'The node that answered' },
    nodes: { type: 'integer', description: 'Live service nodes (1 without cluster presence)' },
    sessions: int,
    users: int,
    locked: int,
    created: int,
    expired: int,
    evicted: int,
    revoked: int,
    rotated: int,
    validations: int,
    backendErrors: int,
    connections: { type: 'integer', description: 'Live sockets, cluster-wide with presence on Redis' },
    connectedUsers: int,
    rooms: int,
    backend: { type: 'string', enum: ['ok', 'unavailable'] },
  },
  'The headline figures',
);

const pointSchema = object(
  {
    t: num,
    sessions: int,
    connections: int,
    created: { type: 'number', description: 'Per minute' },
    expired: { type: 'number', description: 'Per minute' },
    evicted: { type: 'number', description: 'Per minute' },
    revoked: { type: 'number', description: 'Per minute' },
    validations: { type: 'number', description: 'Per second' },
    p50: { type: ['number', 'null'], description: 'Validate latency, ms (null: no validation in the interval)' },
    p99: numOrNull,
    backendErrors: int,
  },
  'One chart point',
);

export const seriesSchema = object({ intervalMs: int, capacity: int, points: { type: 'array', items: pointSchema } });

const connectionSchema = object({
  sid: str,
  userId: strOrNull,
  sessionId: strOrNull,
  rooms: { type: 'array', items: str },
  ip: str,
  connectedAt: num,
  lastActivityAt: num,
  node: str,
});

export const connectionsSchema = object({
  node: str,
  nodes: int,
  answered: { type: 'integer', description: 'Nodes whose rows are in the list (this one included)' },
  clusterTotal: int,
  total: int,
  connections: { type: 'array', items: connectionSchema },
});

export const usersSchema = object({
  users: { type: 'array', items: object({ userId: str, sessions: int }) },
  cursor: { type: ['string', 'null'], description: 'Pass as `cursor` for the next page; null on the last' },
  exact: { type: 'boolean', description: 'True when the backend has no user index and the prefix was taken as a full user id' },
});

const deviceProperties = {
  id: str,
  userId: strOrNull,
  createdAt: num,
  lastAccessedAt: num,
  expiresAt: num,
  status: { type: 'string', enum: ['active', 'locked', 'expired'] },
  ip: strOrNull,
  userAgent: strOrNull,
  browser: strOrNull,
  os: strOrNull,
  device: strOrNull,
} as const;

export const sessionsSchema = object({
  sessions: { type: 'array', items: object(deviceProperties) },
  cursor: strOrNull,
});

export const devicesSchema = object({
  userId: str,
  devices: { type: 'array', items: object({ ...deviceProperties, connections: { type: 'integer', description: "This node's sockets of the session" } }) },
});

const runSchema = object({ at: num, durationMs: numOrNull, ok: { type: 'boolean' }, result: strOrNull, error: strOrNull });

export const consoleJobsSchema = object({
  node: str,
  jobs: { type: 'array', items: { ...jobSchema, additionalProperties: true, properties: { ...jobSchema.properties, node: str, recent: { type: 'array', items: runSchema } } } },
});
