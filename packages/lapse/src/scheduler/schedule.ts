import { Cron } from 'croner';
import { type Duration, parseDuration, parsePositiveDuration } from '../core/duration.js';
import { LapseError } from '../core/errors.js';

/**
 * When a job is due. Time is cut into slots: each run belongs to one slot, named by its
 * start time (`scheduledAt`); that name is what nodes of a cluster agree on.
 */
export interface Schedule {
  /** What `list()` shows: 'every 1m' or the cron expression. */
  readonly label: string;
  /** Start of the first slot strictly after `t`, or null when there is none. */
  nextSlot(t: number): number | null;
  /** Start of the slot `t` falls in (for runOnStart); only interval schedules have one. */
  currentSlot?(t: number): number;
  /** How long a slot's lease is held: long enough that a later timer in the same slot sees it. */
  ttl(slot: number): number;
  /** A random delay in [0, jitter) added to a slot's start. */
  jitter(): number;
}

const UNITS: Array<[string, number]> = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
];

/** 60000 -> '1m', 1500 -> '1500ms': the largest unit that divides evenly. */
function formatMs(ms: number): string {
  for (const [unit, size] of UNITS) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/**
 * Slots at every multiple of `interval` since the epoch, so every node computes the same ones.
 * @example everySchedule('6h', '5m').nextSlot(Date.now())
 */
export function everySchedule(interval: Duration, jitter: Duration = 0): Schedule {
  const ms = parsePositiveDuration(interval, 'interval');
  const jitterMs = parseDuration(jitter, 'jitter');
  // A jitter as long as the interval would move a run into the next slot's time.
  if (jitterMs >= ms) throw new LapseError('LAPSE_INVALID_OPTION', `jitter (${jitterMs}ms) must be shorter than the interval (${ms}ms)`);
  return {
    label: `every ${formatMs(ms)}`,
    nextSlot: (t) => Math.floor(t / ms) * ms + ms,
    currentSlot: (t) => Math.floor(t / ms) * ms,
    ttl: () => ms,
    jitter: () => (jitterMs > 0 ? Math.floor(Math.random() * jitterMs) : 0),
  };
}

/**
 * Slots at the times of a cron expression (5 or 6 fields, local time unless `timezone`).
 * @example cronSchedule('0 3 * * *').nextSlot(Date.now())
 */
export function cronSchedule(expression: string, timezone?: string): Schedule {
  let cron: Cron;
  try {
    cron = new Cron(expression, { paused: true, ...(timezone ? { timezone } : {}) });
    cron.nextRun(new Date(0)); // a bad timezone only shows when a time is computed
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new LapseError('LAPSE_INVALID_OPTION', `invalid cron expression ${JSON.stringify(expression)}: ${detail}`, { cause: err });
  }
  const next = (t: number): number | null => cron.nextRun(new Date(t))?.getTime() ?? null;
  return {
    label: expression,
    nextSlot: next,
    ttl: (slot) => Math.max(1000, (next(slot) ?? slot + 1000) - slot),
    jitter: () => 0,
  };
}
