import type { FastifyInstance } from 'fastify';
import { LapseError } from 'lapse/internal';
import type { ConsoleService } from '../console/console.js';
import { MAX_ROWS } from '../console/connections.js';
import { MAX_STREAMS } from '../console/feed.js';
import type { LapseContext } from '../context.js';
import { API_HEADERS } from '../security.js';
import { errors, userParams } from '../schemas.js';
import { connectionsSchema, consoleJobsSchema, devicesSchema, figuresSchema, seriesSchema, sessionsSchema, usersSchema } from './console-schemas.js';

const prefixQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    prefix: { type: 'string', maxLength: 256 },
    cursor: { type: 'string', minLength: 1, maxLength: 256 },
    limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
  },
} as const;

type PrefixQuery = { prefix?: string; cursor?: string; limit?: string };

function limitOf(raw: string | undefined, fallback: number, max: number): number {
  const n = raw === undefined ? fallback : Number(raw);
  if (!(n >= 1 && n <= max)) throw new LapseError('LAPSE_INVALID_INPUT', `limit must be 1-${max}`);
  return n;
}

/**
 * The admin console's API (admin key only; in /openapi.json under the tag `console`, see
 * docs/console.md): the push stream, chart series, connections with disconnect, prefix
 * search, devices, jobs.
 */
export function consoleRoutes(ctx: LapseContext, service: ConsoleService) {
  const config = (summary: string) => ({ role: 'admin' as const, summary, tags: ['console'] });
  const answers = (schema: object, ...statuses: number[]) => ({ 200: schema, ...errors(403, ...statuses) });
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      '/v1/console/events',
      {
        config: { ...config('Server-sent events: figures, connections, sessions, jobs, chart points'), produces: 'text/event-stream' },
        schema: {
          response: {
            200: {
              type: 'string',
              description:
                'An event stream: `figures` and `series` (the chart history) first, then `figures`, `point`, `connections`, `sessions` and `jobs` events as things change; each `data` is JSON',
            },
            ...errors(403),
          },
        },
      },
      async (request, reply) => {
      if (service.feed.full()) throw new LapseError('LAPSE_INVALID_INPUT', `at most ${MAX_STREAMS} console streams at once`);
      const hello = {
        figures: await service.figures(),
        series: { intervalMs: service.series.intervalMs, capacity: service.series.capacity, points: service.series.list() },
      };
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        ...API_HEADERS,
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
      });
      request.raw.socket.setNoDelay(true);
      service.feed.add(res, hello);
      },
    );

    app.get('/v1/console/figures', { config: config('The headline figures now'), schema: { response: answers(figuresSchema) } }, async () =>
      service.figures(),
    );

    app.get(
      '/v1/console/series',
      { config: config('The chart points of the last hour'), schema: { response: answers(seriesSchema) } },
      async () => ({
        intervalMs: service.series.intervalMs,
        capacity: service.series.capacity,
        points: service.series.list(),
      }),
    );

    app.get<{ Querystring: { user?: string; room?: string; limit?: string } }>(
      '/v1/console/connections',
      {
        config: config("This node's live connections, by user and room"),
        schema: {
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              user: { type: 'string', minLength: 1, maxLength: 256 },
              room: { type: 'string', minLength: 1, maxLength: 256 },
              limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
            },
          },
          response: answers(connectionsSchema),
        },
      },
      async (request) => {
        const { user, room } = request.query;
        return service.connections({ user, room, limit: limitOf(request.query.limit, 200, MAX_ROWS) });
      },
    );

    app.post<{ Params: { sid: string } }>(
      '/v1/console/connections/:sid/disconnect',
      {
        config: config('Disconnect a live socket (of any node on Redis)'),
        schema: {
          params: { type: 'object', required: ['sid'], properties: { sid: { type: 'string', minLength: 1, maxLength: 256 } } },
          response: { 204: { type: 'null' }, ...errors(403, 404) },
        },
      },
      async (request, reply) => {
        if (!(await service.disconnect(request.params.sid))) throw new LapseError('LAPSE_NOT_FOUND', 'no such live connection');
        return reply.code(204).send();
      },
    );

    app.get<{ Querystring: PrefixQuery }>(
      '/v1/console/users',
      {
        config: config('Users whose id starts with a prefix, with their session counts'),
        schema: { querystring: prefixQuery, response: answers(usersSchema) },
      },
      async (request) => {
        const q = request.query;
        const page = await service.directory.users(q.prefix ?? '', q.cursor ?? null, limitOf(q.limit, 25, 200));
        return { users: page.rows, cursor: page.cursor, exact: page.exact };
      },
    );

    app.get<{ Querystring: PrefixQuery }>(
      '/v1/console/sessions',
      { config: config('Sessions whose id starts with a prefix, in id order'), schema: { querystring: prefixQuery, response: answers(sessionsSchema) } },
      async (request) => {
        const q = request.query;
        const page = await service.directory.sessions(q.prefix ?? '', q.cursor ?? null, limitOf(q.limit, 25, 200));
        return { sessions: page.rows, cursor: page.cursor };
      },
    );

    app.get<{ Params: { userId: string } }>(
      '/v1/console/users/:userId/devices',
      { config: config("A user's sessions as devices"), schema: { params: userParams, response: answers(devicesSchema) } },
      async (request) => {
        const tracker = ctx.live?.tracker;
        const devices = (await service.directory.devices(request.params.userId)).map((d) => ({
          ...d,
          connections: tracker ? tracker.byUser(request.params.userId).filter((c) => c.sessionId === d.id).length : 0,
        }));
        return { userId: request.params.userId, devices };
      },
    );

    app.get('/v1/console/jobs', { config: config('Jobs with their recent runs and node'), schema: { response: answers(consoleJobsSchema) } }, async () => ({
      node: service.node,
      jobs: service.jobs.current(),
    }));
  };
}
