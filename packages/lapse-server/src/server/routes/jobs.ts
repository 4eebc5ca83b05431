import type { FastifyInstance } from 'fastify';
import type { LapseContext } from '../context.js';
import { errors } from '../schemas.js';

export const jobSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    schedule: { type: 'string' },
    running: { type: 'boolean' },
    lastRunAt: { type: ['number', 'null'] },
    lastDurationMs: { type: ['number', 'null'] },
    lastResult: { description: 'What the last successful run returned' },
    lastError: { type: ['string', 'null'] },
    nextRunAt: { type: ['number', 'null'] },
    runs: { type: 'integer' },
    failures: { type: 'integer' },
  },
} as const;

/** The scheduler's jobs (session_cleanup and any the host adds): list, run now. */
export function jobRoutes(ctx: LapseContext) {
  const { scheduler } = ctx.store;
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      '/v1/jobs',
      {
        config: { role: 'admin', summary: 'Scheduled jobs with their last and next runs', tags: ['jobs'] },
        schema: {
          response: { 200: { type: 'object', properties: { jobs: { type: 'array', items: jobSchema } } }, ...errors(403) },
        },
      },
      async () => ({ jobs: scheduler.list() }),
    );

    app.post<{ Params: { id: string } }>(
      '/v1/jobs/:id/run',
      {
        config: { role: 'admin', summary: 'Run a job here and now (joins a run in progress)', tags: ['jobs'] },
        schema: {
          params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 128 } } },
          response: {
            200: { type: 'object', properties: { result: { description: 'What the run returned' }, job: jobSchema } },
            ...errors(403, 404),
          },
        },
      },
      async (request) => {
        const result = await scheduler.runNow(request.params.id);
        const job = scheduler.list().find((j) => j.id === request.params.id);
        return { result: result ?? null, job };
      },
    );
  };
}
