import { describe, expect, it } from 'vitest';
import { ManualClock, Scheduler } from 'lapse';
import { silentLogger } from 'lapse/internal';
import { JobRuns } from '../src/server/console/job-runs.js';

describe('console job runs', () => {
  it('the feed reports a run that ended even when the jobs route looked first', async () => {
    const scheduler = new Scheduler({ clock: new ManualClock(1_000_000), logger: silentLogger });
    try {
      let finish: (v: string) => void = () => {};
      scheduler.every('cleanup', '1h', () => new Promise<string>((r) => (finish = r)));
      const runs = new JobRuns(scheduler, () => 'node-1');
      expect(runs.poll().changed).toBe(true); // the job, first seen
      expect(runs.poll().changed).toBe(false);
      // "Run now": the feed's last word is "running".
      const run = scheduler.runNow('cleanup');
      const running = runs.poll();
      expect(running.changed).toBe(true);
      expect(running.jobs[0]?.running).toBe(true);
      finish('done');
      await run;
      // The jobs route (the console reloads it after the click) records the run first...
      const route = runs.current();
      expect(route[0]).toMatchObject({ running: false, runs: 1 });
      expect(route[0]?.recent.map((r) => r.result)).toEqual(['"done"']);
      // ...and the feed still sends the end of the run, so no page is left showing it running.
      const ended = runs.poll();
      expect(ended.changed).toBe(true);
      expect(ended.jobs[0]).toMatchObject({ running: false, runs: 1 });
      expect(ended.jobs[0]?.recent).toHaveLength(1);
      expect(runs.poll().changed).toBe(false);
    } finally {
      await scheduler.stop();
    }
  });
});
