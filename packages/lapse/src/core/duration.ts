import { errors } from './errors.js';

/** A duration: milliseconds as a number, or a string such as '250ms' '30s' '5m' '6h' '7d'. */
export type Duration = number | string;

/**
 * The longest duration anything accepts: 400 days, the longest lifetime browsers give a
 * cookie. A larger value is a mistake or an attack (a session or timer that never ends).
 */
export const MAX_DURATION_MS = 400 * 86_400_000;

/** The longest lease: a lease is held while work is done, and work that takes a day has failed. */
export const MAX_LEASE_MS = 86_400_000;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;

/**
 * Parses a Duration to milliseconds, at most `max` (default MAX_DURATION_MS); anything else is
 * LAPSE_INVALID_OPTION.
 * @example parseDuration('5m') // 300000
 */
export function parseDuration(value: Duration, name = 'duration', max = MAX_DURATION_MS): number {
  let ms: number | undefined;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string') {
    const trimmed = value.trim();
    const m = PATTERN.exec(trimmed);
    if (m) ms = Number(m[1]) * (UNITS[m[2] as string] as number);
    else if (/^\d+$/.test(trimmed)) ms = Number(trimmed);
  }
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) {
    throw errors.optionMustBe(name, "a number of milliseconds or a string like '30s', '5m', '6h', '7d'", value);
  }
  if (ms > max) throw errors.optionMustBe(name, `at most ${describeMax(max)}`, value);
  return Math.round(ms);
}

function describeMax(max: number): string {
  return max % 86_400_000 === 0 ? `${max / 86_400_000}d (${max} ms)` : `${max} ms`;
}

/** Like parseDuration, but the value must be greater than zero. */
export function parsePositiveDuration(value: Duration, name: string, max = MAX_DURATION_MS): number {
  const ms = parseDuration(value, name, max);
  if (ms <= 0) throw errors.optionMustBe(name, 'greater than zero');
  return ms;
}
