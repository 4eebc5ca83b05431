import type { Command } from 'commander';
import { ERROR_CODES, errors, LapseError, type LapseErrorCode } from 'lapse/internal';
import type { JobInfo } from 'lapse/internal';
import { progress } from './progress.js';
import { type CliIO, iso, json, table } from './io.js';
import { configOf, dataOptions, withStore } from './store.js';

const remoteOptions = (cmd: Command) =>
  cmd
    .option('--url <url>', 'ask a running service instead (needs LAPSE_ADMIN_KEY or --key) [env LAPSE_URL]')
    .option('--key <key>', 'admin key for --url (prefer the LAPSE_ADMIN_KEY variable)');

/** Calls a running service's jobs API with the admin key. */
async function remote(io: CliIO, opts: { url?: string; key?: string }, method: string, path: string): Promise<unknown> {
  const base = (opts.url ?? io.env.LAPSE_URL ?? '').replace(/\/+$/, '');
  const key = opts.key ?? io.env.LAPSE_ADMIN_KEY;
  if (!key) throw errors.unauthorized('set LAPSE_ADMIN_KEY (or pass --key) to talk to the service');
  const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${key}` } }).catch((err: unknown) => {
    throw new LapseError('LAPSE_BACKEND_UNAVAILABLE', `cannot reach ${base}: ${(err as Error).message}`, { cause: err });
  });
  const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
  if (!res.ok) throw new LapseError(answeredCode(res.status, body.error?.code), `${base} answered ${res.status}: ${body.error?.message ?? 'no details'}`);
  return body;
}

/** The service's own error code when it sent one we know; else what its status means. 401 is a bad key, not an outage. */
function answeredCode(status: number, code: string | undefined): LapseErrorCode {
  if (code !== undefined && Object.hasOwn(ERROR_CODES, code)) return code as LapseErrorCode;
  if (status === 401) return 'LAPSE_UNAUTHORIZED';
  if (status === 403) return 'LAPSE_FORBIDDEN';
  if (status === 404) return 'LAPSE_NOT_FOUND';
  return status < 500 ? 'LAPSE_INVALID_INPUT' : 'LAPSE_BACKEND_UNAVAILABLE';
}

/** The service to ask: `jobs list` has nothing to show without one (a fresh process has run no job). */
function serviceUrl(io: CliIO, opts: { url?: string }): string {
  const url = opts.url ?? io.env.LAPSE_URL;
  if (!url) {
    throw new LapseError(
      'LAPSE_INVALID_INPUT',
      "jobs list shows a running service's jobs and their runs: pass --url http://127.0.0.1:7411 (or set LAPSE_URL) and LAPSE_ADMIN_KEY",
    );
  }
  return url;
}

const jobRow = (j: JobInfo) => ({
  id: j.id,
  schedule: j.schedule,
  runs: j.runs,
  failures: j.failures,
  lastRun: iso(j.lastRunAt),
  nextRun: iso(j.nextRunAt),
  lastError: j.lastError,
});

/** `lapse jobs list|run` and `lapse sweep`. */
export function jobsCommand(program: Command, io: CliIO): void {
  const jobs = program.command('jobs').description("the store's scheduled jobs (session_cleanup)");

  remoteOptions(jobs.command('list'))
    .description("a running service's jobs with their run history (needs --url or LAPSE_URL)")
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ LAPSE_ADMIN_KEY=lapse_admin_… lapse jobs list --url http://127.0.0.1:7411')
    .action(async (opts: { url?: string; key?: string; json?: boolean }) => {
      const list = ((await remote(io, { ...opts, url: serviceUrl(io, opts) }, 'GET', '/v1/jobs')) as { jobs: JobInfo[] }).jobs;
      if (opts.json) return json(io, list);
      table(io, list.map(jobRow), ['id', 'schedule', 'runs', 'failures', 'lastRun', 'nextRun', 'lastError']);
    });

  remoteOptions(dataOptions(jobs.command('run').argument('<id>', 'job id, e.g. session_cleanup')))
    .description('run a job now (here, on the data; or in the service with --url)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ lapse jobs run session_cleanup')
    .action(async (id: string, opts: { url?: string; key?: string; json?: boolean }) => {
      const result =
        opts.url || io.env.LAPSE_URL
          ? ((await remote(io, opts, 'POST', `/v1/jobs/${encodeURIComponent(id)}/run`)) as { result: unknown }).result
          : await withStore(configOf(opts, io), (store) => store.scheduler.runNow(id), { sweepInterval: '1m' });
      if (opts.json) return json(io, { id, result: result ?? null });
      io.stdout.write(`${id}: ${JSON.stringify(result ?? null)}\n`);
    });

  dataOptions(program.command('sweep'))
    .description('remove expired sessions now, in bounded batches')
    .option('--limit <n>', 'remove at most this many')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ lapse sweep\n  $ lapse sweep --limit 100000')
    .action(async (opts: { limit?: string; json?: boolean }) => {
      const limit = opts.limit === undefined ? undefined : Number(opts.limit);
      if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) throw errors.inputMustBe('--limit', 'a whole number >= 1');
      const bar = progress({ label: 'sweep', stream: io.stderr, unit: 'removed' });
      const result = await withStore(configOf(opts, io), async (store) => {
        // Batches of 1000, so the spinner moves while a big backlog goes.
        let expired = 0;
        for (;;) {
          const step = Math.min(1000, (limit ?? Number.POSITIVE_INFINITY) - expired);
          if (step <= 0) break;
          const r = await store.sweep({ limit: step });
          expired += r.expired;
          bar.update(expired);
          if (r.expired < step) break;
        }
        return { expired };
      });
      bar.finish();
      if (opts.json) return json(io, result);
      io.stdout.write(`removed ${result.expired} expired session${result.expired === 1 ? '' : 's'}\n`);
    });
}
