import type { JobLease } from '../core/backend.js';
import { type Clock, type TimerClock, timerClock } from '../core/clock.js';
import type { Duration } from '../core/duration.js';
import { errors, LapseError } from '../core/errors.js';
import { type Job, type JobFn, type JobInfo, jobInfo, newJob } from './job.js';
import { keepRenewed } from './lease.js';
import { defaultLogger, type Logger } from '../util/logger.js';
import { cronSchedule, everySchedule, type Schedule } from './schedule.js';

export type { JobContext, JobFn, JobInfo } from './job.js';

export interface SchedulerOptions {
  logger?: Logger;
  clock?: Clock;
  /** Shared by every node: each slot of each job then runs on one node only. */
  lease?: JobLease;
}

/** Who registers a job: the same owner replaces its job, another owner gets a job of its own. */
interface Owned {
  /**
   * Who the job belongs to (a store, a tracker: any value compared with ===). Registering an
   * id held by another owner gives this one `id#2` (or the next free number) instead of
   * replacing the other's job. Without it, the registration replaces whatever job holds the id,
   * as the id says (`store.scheduler.every('session_cleanup', '6h', …)` reschedules the store's
   * cleanup), and the job then belongs to no owner: the old owner's handle no longer removes it.
   */
  owner?: unknown;
}

/** What every() and cron() return: the id the job got and a way to remove that job only. */
export interface JobHandle {
  readonly id: string;
  /** Unschedules this job if it is still the one registered under `id`; safe to call twice. */
  remove(): void;
}

export interface EveryOptions extends Owned {
  /** A random delay in [0, jitter) after each slot start, to spread load; shorter than the interval. */
  jitter?: Duration;
  /** Also run the current slot at once (still once per slot across a cluster with a lease). */
  runOnStart?: boolean;
}

export interface CronOptions extends Owned {
  /** IANA time zone of the expression; local time by default. */
  timezone?: string;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Runs named jobs on intervals or cron times; a job never overlaps itself, a failure is
 * logged and the job stays scheduled. With a `lease`, each slot runs once across a cluster.
 * @example
 * const scheduler = new Scheduler({ lease: backend.jobLease?.() });
 * scheduler.every('session_cleanup', '1m', () => store.sweep(), { jitter: '5s' });
 * await scheduler.stop();
 */
export class Scheduler {
  private readonly clock: TimerClock;
  private readonly logger: Logger;
  private readonly lease: JobLease | undefined;
  private readonly jobs = new Map<string, Job>();
  /** Lease waits and runs in progress, including those of replaced or removed jobs. */
  private readonly inflight = new Set<Promise<unknown>>();
  private stopping: Promise<void> | undefined;

  constructor(opts: SchedulerOptions = {}) {
    this.clock = timerClock(opts.clock);
    this.logger = opts.logger ?? defaultLogger();
    this.lease = opts.lease;
  }

  /** Runs `fn` at each multiple of `interval` since the epoch (plus jitter); the same id (and owner) replaces. */
  every(id: string, interval: Duration, fn: JobFn, opts: EveryOptions = {}): JobHandle {
    this.assertOpen();
    return this.register(id, everySchedule(interval, opts.jitter), fn, opts.runOnStart === true, opts.owner);
  }

  /**
   * Runs `fn` at the times of a cron expression; the same id (and owner) replaces.
   * @example scheduler.cron('nightly_report', '0 3 * * *', report)
   */
  cron(id: string, expression: string, fn: JobFn, opts: CronOptions = {}): JobHandle {
    this.assertOpen();
    return this.register(id, cronSchedule(expression, opts.timezone), fn, false, opts.owner);
  }

  /** A snapshot of every job, as plain objects. */
  list(): JobInfo[] {
    return [...this.jobs.values()].map(jobInfo);
  }

  /** Runs a job here and now (no lease) and returns its result; joins the run already in progress. */
  async runNow(id: string): Promise<unknown> {
    this.assertOpen();
    const job = this.find(id);
    return job.current ?? this.execute(job, this.clock.now());
  }

  /** Unschedules a job; a run in progress finishes (and `stop()` still waits for it). False when there was none. */
  remove(id: string): boolean {
    const job = this.jobs.get(id);
    if (!job) return false;
    this.unschedule(job);
    return true;
  }

  /** Clears every timer and waits for running jobs. Safe to call twice. */
  stop(): Promise<void> {
    if (!this.stopping) {
      for (const job of this.jobs.values()) this.disarm(job);
      this.stopping = this.drain();
    }
    return this.stopping;
  }

  private async drain(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  private assertOpen(): void {
    if (this.stopping) throw errors.closed('the scheduler');
  }

  private find(id: string): Job {
    const job = this.jobs.get(id);
    if (!job) throw new LapseError('LAPSE_NOT_FOUND', `no job with id ${JSON.stringify(id)}`);
    return job;
  }

  private register(asked: string, schedule: Schedule, fn: JobFn, runOnStart: boolean, owner: unknown): JobHandle {
    if (typeof asked !== 'string' || asked === '') throw errors.optionMustBe('a job id', 'a non-empty string');
    if (typeof fn !== 'function') throw errors.optionMustBe(`job ${asked}: fn`, 'a function');
    const id = this.idFor(asked, owner);
    // Replacing keeps the record (stats, the run in progress) so the job still never overlaps itself.
    const job = this.jobs.get(id) ?? newJob(id, fn, schedule, owner);
    this.disarm(job);
    this.jobs.set(id, job);
    job.owner = owner;
    job.fn = fn;
    job.schedule = schedule;
    const now = this.clock.now();
    const current = runOnStart ? schedule.currentSlot?.(now) : undefined;
    if (current !== undefined) this.arm(job, current, now);
    else this.armNext(job, now);
    return {
      id,
      remove: () => {
        if (this.jobs.get(id) === job && job.owner === owner) this.unschedule(job);
      },
    };
  }

  /** `asked` when it is free, this owner's, or asked for by no owner; else the first of `asked#2`, `asked#3`, … that is. */
  private idFor(asked: string, owner: unknown): string {
    if (owner === undefined) return asked;
    let id = asked;
    for (let n = 2; ; n++) {
      const held = this.jobs.get(id);
      if (!held || held.owner === owner) return id;
      id = `${asked}#${n}`;
    }
  }

  private unschedule(job: Job): void {
    this.disarm(job);
    this.jobs.delete(job.id);
  }

  private disarm(job: Job): void {
    job.gen++;
    if (job.timer !== undefined) this.clock.clearTimer(job.timer);
    job.timer = undefined;
    job.nextRunAt = null;
  }

  private armNext(job: Job, after: number): void {
    const slot = job.schedule.nextSlot(after);
    if (slot !== null) this.arm(job, slot, slot + job.schedule.jitter());
  }

  private arm(job: Job, slot: number, fireAt: number): void {
    const gen = job.gen;
    job.nextRunAt = fireAt;
    job.timer = this.clock.setTimer(() => this.fire(job, gen, slot, fireAt), fireAt - this.clock.now());
  }

  private fire(job: Job, gen: number, slot: number, fireAt: number): void {
    if (gen !== job.gen) return;
    job.timer = undefined;
    const now = this.clock.now();
    // Real timers cap their delay at ~24.8 days (and may wake a hair early): wait out the rest.
    if (now < fireAt) {
      this.arm(job, slot, fireAt);
      return;
    }
    // The next slot is planned before this one runs, so a slow run never shifts the schedule.
    this.armNext(job, now);
    if (job.current || job.acquiring) {
      this.logger.warn({ job: job.id, scheduledAt: slot }, 'job still running; slot skipped');
      return;
    }
    this.track(this.lease ? this.runLeased(job, gen, slot, this.lease) : this.execute(job, slot));
  }

  /** Runs a slot if this node wins its lease; the key is kept (not released) so the slot stays done. */
  private async runLeased(job: Job, gen: number, slot: number, lease: JobLease): Promise<void> {
    const ttl = job.schedule.ttl(slot);
    // Past slot + ttl a winner's key may have expired: running now could run the slot twice.
    if (this.clock.now() >= slot + ttl) {
      this.logger.warn({ job: job.id, scheduledAt: slot }, 'job timer fired after its slot; slot skipped');
      return;
    }
    const key = `${job.id}:${slot}`;
    let token: string | null;
    job.acquiring = true;
    try {
      token = await lease.acquire(key, ttl);
    } catch (err) {
      job.failures++;
      job.lastError = message(err);
      this.logger.error({ job: job.id, scheduledAt: slot, err }, 'job lease failed; slot not run');
      return;
    } finally {
      job.acquiring = false;
    }
    if (token === null) {
      this.logger.debug({ job: job.id, scheduledAt: slot }, 'slot taken by another node');
      return;
    }
    if (gen !== job.gen || this.stopping || job.current) {
      // Replaced, removed, stopped or started by runNow meanwhile: hand the slot back to the cluster.
      this.logger.debug({ job: job.id, scheduledAt: slot }, 'slot given back');
      await lease.release(key, token).catch((err: unknown) => this.logger.warn({ job: job.id, err }, 'job lease release failed'));
      return;
    }
    const stopRenewing = keepRenewed(this.clock, lease, key, token, ttl, (err) =>
      this.logger.warn({ job: job.id, key, err }, 'job lease not renewed while running'),
    );
    try {
      await this.execute(job, slot);
    } catch {
      // already logged and counted by execute
    } finally {
      stopRenewing();
    }
  }

  /** One run: records the outcome, logs it, and settles with fn's result or error. */
  private execute(job: Job, scheduledAt: number): Promise<unknown> {
    const run = this.invoke(job, scheduledAt);
    job.current = run;
    const clear = (): void => {
      if (job.current === run) job.current = null;
    };
    run.then(clear, clear);
    this.track(run);
    return run;
  }

  private async invoke(job: Job, scheduledAt: number): Promise<unknown> {
    const start = this.clock.now();
    job.lastRunAt = start;
    try {
      const result = await job.fn({ id: job.id, scheduledAt });
      const durationMs = this.clock.now() - start;
      job.runs++;
      job.lastDurationMs = durationMs;
      job.lastResult = result;
      job.lastError = null;
      this.logger.info({ job: job.id, durationMs, result }, 'job finished');
      return result;
    } catch (err) {
      const durationMs = this.clock.now() - start;
      job.runs++;
      job.failures++;
      job.lastDurationMs = durationMs;
      job.lastError = message(err);
      this.logger.error({ job: job.id, durationMs, err }, 'job failed');
      throw err;
    }
  }

  private track(p: Promise<unknown>): void {
    this.inflight.add(p);
    const done = (): void => {
      this.inflight.delete(p);
    };
    p.then(done, done);
  }
}
