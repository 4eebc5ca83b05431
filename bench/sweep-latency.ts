/**
 * Validate latency during a big sweep: a SQLite file with 300k expired sessions and one live
 * one; the cleanup job (flush pending accesses, then sweep) runs while the live session is
 * validated on a fixed schedule, every PERIOD_MS. Each validate is timed from when it was
 * due, so time spent waiting for a blocked event loop counts (no coordinated omission).
 * Beside it: the same schedule with the store idle, and with a no-op instead of a validate
 * (the idle loop's own noise on this shared machine). The sweep's chunks run on the checkpoint
 * worker (docs/sqlite.md); beside each worst case, how much of it the event loop's thread spent
 * waiting for a CPU.
 * Run: npm run build && node --import tsx bench/sweep-latency.ts (ROUNDS=n to change the rounds)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sqlite } from '../packages/lapse/dist/backends/sqlite/backend.js';
import { silentLogger } from '../packages/lapse/dist/util/logger.js';
import { createStore } from '../packages/lapse/dist/core/store.js';
import { tempDir } from '../test/helpers/tmp.js';
import { progress, withLoopMonitor, writeResults } from './lib.js';
import { fillExpired } from './sqlite-fill.js';

const EXPIRED = 300_000;
const PERIOD_MS = 2;
const IDLE_MS = 3_000;
const ROUNDS = Number(process.env.ROUNDS ?? 3);
/** The target: a validate's worst latency during the sweep, at most this far above the idle one. */
const BUDGET_MS = 50;

/**
 * Milliseconds the event loop's thread has spent runnable but waiting for a CPU (Linux
 * schedstat, field 2): how much of a delay was the machine's other work, not ours.
 */
function runqueueWaitMs(): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[1]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

/** The runqueue wait during the slowest op of the last paced() run. */
let worstWaitMs = Number.NaN;

/** Runs `op` every PERIOD_MS until `done()`; each latency is measured from the time it was due. */
function paced(op: () => unknown, done: () => boolean): Promise<number[]> {
  const out: number[] = [];
  let worst = -1;
  let waitAtDue = runqueueWaitMs();
  const start = performance.now();
  let k = 0;
  return new Promise((resolve) => {
    const tick = async (): Promise<void> => {
      while (start + k * PERIOD_MS <= performance.now()) {
        const due = start + k++ * PERIOD_MS;
        await op();
        const took = performance.now() - due;
        out.push(took);
        const wait = runqueueWaitMs();
        // Counted from the previous op's end: the waits between it and this op's due time too (an upper bound).
        if (took > worst) {
          worst = took;
          worstWaitMs = wait - waitAtDue;
        }
        waitAtDue = wait;
      }
      if (done()) resolve(out);
      else setTimeout(tick, Math.max(0, start + k * PERIOD_MS - performance.now()));
    };
    setTimeout(tick, 0);
  });
}

function forMs(ms: number): () => boolean {
  const end = performance.now() + ms;
  return () => performance.now() >= end;
}

interface Summary {
  /** Runqueue wait of the event loop's thread around the slowest op (see runqueueWaitMs). */
  worstWait: number;
  n: number;
  p50: number;
  p99: number;
  max: number;
}

function summary(xs: number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  return { worstWait: worstWaitMs, n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? Number.NaN };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)}`;

interface Round {
  noise: Summary;
  idle: Summary;
  sweep: Summary;
  totalMs: number;
  maxBlockMs: number;
}

/**
 * One round on a fresh file. `touchInterval` 0 makes every validate write its access (what a
 * live session does once per touchInterval); the default leaves them to the job's flush.
 */
async function round(dir: string, i: number, touchInterval: number | undefined): Promise<Round> {
  const backend = sqlite({ path: join(dir, `sweep-${i}.db`) });
  fillExpired(backend, EXPIRED, Date.now() - 3 * 3_600_000);
  // The job is registered (as in a service) but only run by hand below.
  const store = createStore({ backend, sweepInterval: '1h', idleTimeout: '1h', touchInterval, logger: silentLogger });
  const { token } = await store.create({ userId: 'live', data: { live: true } });
  const validate = async () => {
    if (!(await store.validate(token))) throw new Error('the live session was not found');
  };
  const noise = summary(await paced(() => undefined, forMs(IDLE_MS)));
  const idle = summary(await paced(validate, forMs(IDLE_MS)));
  let finished = false;
  const during = paced(validate, () => finished);
  const job = withLoopMonitor(() => store.scheduler.runNow('session_cleanup') as Promise<{ deleted: number }>);
  const { result, maxBlockMs, totalMs } = await job.finally(() => {
    finished = true;
  });
  const sweep = summary(await during);
  if (result.deleted !== EXPIRED) throw new Error(`the job removed ${result.deleted}, not ${EXPIRED}`);
  await store.close();
  progress(
    `round ${i + 1} (touchInterval ${touchInterval ?? 'default'}): noise max ${noise.max.toFixed(1)}, idle p99 ${idle.p99.toFixed(1)} max ${idle.max.toFixed(1)}, ` +
      `sweep p99 ${sweep.p99.toFixed(1)} max ${sweep.max.toFixed(1)} ms (job ${(totalMs / 1000).toFixed(1)} s, block ${maxBlockMs.toFixed(1)} ms)`,
  );
  return { noise, idle, sweep, totalMs, maxBlockMs };
}

const tmp = tempDir('lapse-bench-sweep-');
const modes = [
  { name: 'accesses coalesced (default touchInterval)', touchInterval: undefined },
  { name: 'every validate writes its access (touchInterval 0)', touchInterval: 0 },
];
const byMode: Round[][] = modes.map(() => []);
try {
  for (let i = 0; i < ROUNDS; i++) {
    for (const [m, mode] of modes.entries()) byMode[m]?.push(await round(tmp.dir, i * modes.length + m, mode.touchInterval));
  }
} finally {
  tmp.cleanup();
}
const rows: Record<string, string | number>[] = [];
const notes: string[] = [];
for (const [m, mode] of modes.entries()) table(mode.name, byMode[m] ?? []);

/** The rows of one mode: each cell the median over rounds, the range beside it. */
function table(mode: string, runs: Round[]): void {
  for (const [name, pick] of [
    ['idle loop, no-op (noise)', (r: Round) => r.noise],
    ['validate, store idle', (r: Round) => r.idle],
    ['validate, during the cleanup job', (r: Round) => r.sweep],
  ] as const) {
    const s = runs.map(pick);
    rows.push({
      mode,
      schedule: name,
      'samples (median)': median(s.map((x) => x.n)),
      'p50 ms': `${median(s.map((x) => x.p50)).toFixed(2)} (${spread(s.map((x) => x.p50))})`,
      'p99 ms': `${median(s.map((x) => x.p99)).toFixed(2)} (${spread(s.map((x) => x.p99))})`,
      'max ms': `${median(s.map((x) => x.max)).toFixed(1)} (${spread(s.map((x) => x.max))})`,
      'CPU wait in the max, ms': `${median(s.map((x) => x.worstWait)).toFixed(1)} (${spread(s.map((x) => x.worstWait))})`,
    });
  }
  const excess = runs.map((r) => r.sweep.max - r.idle.max);
  rows.push({
    mode,
    schedule: `worst during sweep minus worst idle (target <= ${BUDGET_MS} ms)`,
    'samples (median)': '',
    'p50 ms': '',
    'p99 ms': '',
    'max ms': `${median(excess).toFixed(1)} (${spread(excess)}) ${Math.max(...excess) <= BUDGET_MS ? 'met' : 'NOT met'}`,
    'CPU wait in the max, ms': '',
  });
  const net = runs.map((r) => r.sweep.max - r.sweep.worstWait - (r.idle.max - r.idle.worstWait));
  rows.push({
    mode,
    schedule: 'the same, each worst net of its CPU wait (attribution, not the target)',
    'samples (median)': '',
    'p50 ms': '',
    'p99 ms': '',
    'max ms': `${median(net).toFixed(1)} (${spread(net)})`,
    'CPU wait in the max, ms': '',
  });
  notes.push(
    `${mode}: the cleanup job (store.scheduler.runNow('session_cleanup'): flush pending accesses, then sweep) took ${median(runs.map((r) => r.totalMs / 1000)).toFixed(1)} s at the median (${spread(runs.map((r) => r.totalMs / 1000))} s); longest event-loop block ${median(runs.map((r) => r.maxBlockMs)).toFixed(1)} ms (${spread(runs.map((r) => r.maxBlockMs))}).`,
  );
}

writeResults('sweep-latency', 'Validate latency while the cleanup job sweeps 300k expired SQLite sessions', rows, [
  `${ROUNDS} rounds per mode, the modes in turns; each cell is the median over rounds, the range in brackets. A fresh file per round: ${EXPIRED.toLocaleString('en')} expired sessions written with SQL, then one live session created through the store.`,
  `Validates of the live session are due every ${PERIOD_MS} ms and timed from when they were due, so waiting for a blocked event loop counts. Idle: ${IDLE_MS / 1000} s with nothing else running; noise: the same schedule with a no-op.`,
  ...notes,
  'CPU wait in the max: of the slowest op, the time the event loop\'s thread was runnable but waiting for a CPU (Linux /proc schedstat, counted from the end of the op before it, so an upper bound): the machine\'s other work, not a block of ours.',
  `Target: in every round, the worst validate during the sweep at most ${BUDGET_MS} ms above the worst idle one ("met" in the table).`,
  "Other work on the machine shows in the idle-loop noise rows and in the CPU wait column; the header gives the load average.",
]);
