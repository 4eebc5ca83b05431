import type { JobInfo } from 'lapse/internal';
import type { Scheduler } from 'lapse';

/** One finished run of a job, as the console shows it. */
export interface JobRun {
  at: number;
  durationMs: number | null;
  ok: boolean;
  /** What the run returned, as JSON cut to 200 characters. */
  result: string | null;
  error: string | null;
}

/** A job with its recent runs and the node that ran them. */
export interface JobView extends JobInfo {
  node: string;
  recent: JobRun[];
}

/** Runs kept per job. */
const KEEP = 10;

/**
 * The recent runs of each job, noticed by comparing scheduler.list() snapshots (the scheduler
 * has no run events): a run is one more in `runs + failures`. Runs on other nodes of a cluster
 * are theirs to show: each node reports its own, named by its node id.
 */
export class JobRuns {
  private readonly seen = new Map<string, { count: number; recent: JobRun[] }>();
  /** What poll() last reported, as a signature of each job's runs, running state and last run. */
  private sent: string | undefined;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly node: () => string,
  ) {}

  /** The jobs now, with their recent runs (a run that finished since the last look is recorded). */
  current(): JobView[] {
    const jobs: JobView[] = [];
    const live = new Set<string>();
    for (const j of this.scheduler.list()) {
      live.add(j.id);
      const count = j.runs + j.failures;
      let entry = this.seen.get(j.id);
      if (!entry) {
        entry = { count, recent: count > 0 && j.lastRunAt !== null ? [runOf(j)] : [] };
        this.seen.set(j.id, entry);
      } else if (count !== entry.count) {
        entry.count = count;
        if (j.lastRunAt !== null) entry.recent = [runOf(j), ...entry.recent].slice(0, KEEP);
      }
      jobs.push({ ...j, node: this.node(), recent: entry.recent });
    }
    for (const id of [...this.seen.keys()]) if (!live.has(id)) this.seen.delete(id);
    return jobs;
  }

  /**
   * For the event feed: the jobs now, and whether they differ from what the feed last sent (a
   * run finished, a job started or stopped running, one came or went), or a job is running.
   * Compared with what was sent, not with the last look: a reader of current() in between (the
   * jobs route, after "Run now") must not leave the feed's last word, a run shown as running, stale.
   */
  poll(): { jobs: JobView[]; changed: boolean } {
    const jobs = this.current();
    const sig = jobs.map((j) => `${j.id}\u0000${j.runs + j.failures}\u0000${j.running}\u0000${j.lastRunAt}`).join('\u0001');
    const changed = sig !== this.sent;
    this.sent = sig;
    return { jobs, changed: changed || jobs.some((j) => j.running) };
  }
}

function runOf(j: JobInfo): JobRun {
  const ok = j.lastError === null;
  let result: string | null = null;
  if (ok && j.lastResult !== undefined) {
    try {
      result = JSON.stringify(j.lastResult)?.slice(0, 200) ?? null;
    } catch {
      result = String(j.lastResult).slice(0, 200);
    }
  }
  return { at: j.lastRunAt as number, durationMs: j.lastDurationMs, ok, result, error: j.lastError };
}
