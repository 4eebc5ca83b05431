import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { silentLogger } from '../src/util/logger.js';
import { Scheduler } from '../src/scheduler/scheduler.js';
import { trackConnections } from '../src/socket.io/index.js';
import { createStore } from '../src/core/store.js';
import { startServer } from './fixtures/socketio-harness.js';
import { cleanupsAfterEach } from '../../../test/helpers/cleanups.js';

const cleanups = cleanupsAfterEach();

function scheduler(clock = new ManualClock(0)): Scheduler {
  const s = new Scheduler({ clock, logger: silentLogger });
  cleanups.push(() => s.stop());
  return s;
}

describe('Scheduler: jobs belong to their owner', () => {
  it('a second owner of the same id gets a job of its own; each handle removes only its own', async () => {
    const clock = new ManualClock(0);
    const s = scheduler(clock);
    const runs: string[] = [];
    const a = s.every('session_cleanup', '1s', () => void runs.push('a'), { owner: 'store a' });
    const b = s.every('session_cleanup', '1s', () => void runs.push('b'), { owner: 'store b' });
    expect(a.id).toBe('session_cleanup');
    expect(b.id).toBe('session_cleanup#2');
    await clock.advance('1s');
    expect(runs.sort()).toEqual(['a', 'b']);
    a.remove();
    a.remove(); // idempotent
    expect(s.list().map((j) => j.id)).toEqual(['session_cleanup#2']);
    await clock.advance('1s');
    expect(runs.filter((r) => r === 'b')).toHaveLength(2);
    expect(runs.filter((r) => r === 'a')).toHaveLength(1);
    b.remove();
    expect(s.list()).toEqual([]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('the same owner re-registering replaces its job, as without an owner', async () => {
    const clock = new ManualClock(0);
    const s = scheduler(clock);
    const runs: string[] = [];
    const owner = {};
    const first = s.every('job', '1s', () => void runs.push('old'), { owner });
    const second = s.every('job', '1s', () => void runs.push('new'), { owner });
    expect(second.id).toBe('job');
    expect(s.list()).toHaveLength(1);
    await clock.advance('1s');
    expect(runs).toEqual(['new']);
    first.remove(); // the same registration, replaced: removing it removes the job
    expect(s.list()).toEqual([]);
  });

  it('a handle whose id was freed and taken by another owner does not remove the newcomer', () => {
    const s = scheduler();
    const a = s.every('job', '1s', () => {}, { owner: 'a' });
    a.remove();
    const c = s.cron('job', '* * * * *', () => {}, { owner: 'c' });
    expect(c.id).toBe('job');
    a.remove();
    expect(s.list().map((j) => j.id)).toEqual(['job']);
  });

  it("a registration without an owner replaces the job holding the id, whoever's it was", async () => {
    const clock = new ManualClock(0);
    const s = scheduler(clock);
    const store = createStore({ clock, scheduler: s, sweepInterval: '1m', idleTimeout: '10s', logger: silentLogger });
    cleanups.push(() => store.close());
    const expired: string[] = [];
    store.on('expired', (e) => expired.push(e.id));
    // The design's example, on the store's scheduler: reschedule the cleanup, not a second one.
    const mine = s.every('session_cleanup', '6h', () => store.sweep());
    expect(mine.id).toBe('session_cleanup');
    expect(s.list().map((j) => [j.id, j.schedule])).toEqual([['session_cleanup', 'every 6h']]);
    const { session } = await store.create();
    await clock.advance('1h'); // the old 1-minute schedule no longer runs
    expect(expired).toEqual([]);
    await clock.advance('5h');
    expect(expired).toEqual([session.id]);
    // The store's own handle no longer removes the job it lost; the new registration's does.
    await store.close();
    expect(s.list().map((j) => j.id)).toEqual(['session_cleanup']);
    mine.remove();
    expect(s.list()).toEqual([]);
  });

  it('remove(id) is idempotent: an unknown id is a no-op that says false', () => {
    const s = scheduler();
    s.every('job', '1s', () => {});
    expect(s.remove('job')).toBe(true);
    expect(s.remove('job')).toBe(false);
    expect(s.remove('never')).toBe(false);
  });
});

describe('two stores on one scheduler', () => {
  it('each sweeps its own sessions; closing one leaves the other job, closing both does not reject', async () => {
    const clock = new ManualClock(0);
    const s = scheduler(clock);
    const one = createStore({ clock, scheduler: s, sweepInterval: '1m', idleTimeout: '10s', logger: silentLogger });
    const two = createStore({ clock, scheduler: s, sweepInterval: '1m', idleTimeout: '10s', logger: silentLogger });
    cleanups.push(() => one.close(), () => two.close());
    const expired: string[] = [];
    one.on('expired', () => expired.push('one'));
    two.on('expired', () => expired.push('two'));
    expect(s.list().map((j) => j.id).sort()).toEqual(['session_cleanup', 'session_cleanup#2']);
    await one.create();
    await two.create();
    await clock.advance('1m');
    expect(expired.sort()).toEqual(['one', 'two']);

    await one.close();
    expect(s.list().map((j) => j.id)).toEqual(['session_cleanup#2']);
    await two.create();
    await clock.advance('1m');
    expect(expired.filter((e) => e === 'two')).toHaveLength(2);
    await expect(two.close()).resolves.toBeUndefined();
    expect(s.list()).toEqual([]);
  });
});

describe('two trackers on one scheduler', () => {
  it('neither adds a job to the scheduler; closing the first keeps the second working; closing the second does not reject', async () => {
    const server = await startServer();
    cleanups.push(() => server.close());
    const s = scheduler();
    const a = trackConnections(server.io.of('/a'), { scheduler: s, logger: silentLogger });
    const b = trackConnections(server.io.of('/b'), { scheduler: s, logger: silentLogger });
    cleanups.push(() => a.close(), () => b.close());
    expect(s.list()).toEqual([]);
    await a.close();
    expect(b.stats().totalSessions).toBe(0);
    await expect(b.close()).resolves.toBeUndefined();
    expect(s.list()).toEqual([]);
  });
});
