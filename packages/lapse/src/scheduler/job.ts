import type { Schedule } from './schedule.js';

/** What a job function receives: its id and the start of the slot it runs for. */
export interface JobContext {
  id: string;
  scheduledAt: number;
}

/** A job: sync or async; what it returns becomes `lastResult`. */
export type JobFn<T = unknown> = (ctx: JobContext) => T | Promise<T>;

/** One row of `Scheduler.list()`. Times are epoch ms, null until known. */
export interface JobInfo {
  id: string;
  /** 'every 1m' or the cron expression. */
  schedule: string;
  running: boolean;
  lastRunAt: number | null;
  lastDurationMs: number | null;
  /** What the last successful run returned. */
  lastResult: unknown;
  /** Message of the last failure; null again after a success. */
  lastError: string | null;
  nextRunAt: number | null;
  runs: number;
  /** Runs that threw, plus slots lost to a lease error. */
  failures: number;
}

/** The Scheduler's record of one job id; it outlives replacements of the schedule. */
export interface Job extends Omit<JobInfo, 'schedule' | 'running'> {
  fn: JobFn;
  schedule: Schedule;
  /** Grows on replace/remove/stop so that timers and lease waits of the old schedule stand down. */
  gen: number;
  timer: unknown;
  /** The run in progress, shared by runNow callers. */
  current: Promise<unknown> | null;
  /** Waiting for the lease of a slot. */
  acquiring: boolean;
  /** Who registered it last (see Scheduler.every's `owner`): only the same owner, or no owner, replaces it. */
  owner: unknown;
}

/** A fresh record with no runs. */
export function newJob(id: string, fn: JobFn, schedule: Schedule, owner: unknown): Job {
  return {
    id,
    owner,
    fn,
    schedule,
    gen: 0,
    timer: undefined,
    current: null,
    acquiring: false,
    lastRunAt: null,
    lastDurationMs: null,
    lastResult: null,
    lastError: null,
    nextRunAt: null,
    runs: 0,
    failures: 0,
  };
}

/** A Job as the plain object `list()` returns. */
export function jobInfo(job: Job): JobInfo {
  const { id, lastRunAt, lastDurationMs, lastResult, lastError, nextRunAt, runs, failures } = job;
  const running = job.current !== null;
  return { id, schedule: job.schedule.label, running, lastRunAt, lastDurationMs, lastResult, lastError, nextRunAt, runs, failures };
}
