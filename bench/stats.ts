import { uniformOrder } from './lib.js';

/**
 * Two-sample statistics for timing comparisons: is one path slower than another, and by how
 * much, with what confidence. Samples are per-call durations (any unit).
 */

/** The median of a list (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** A figure with the range of the rounds or slices it came from, as the result tables quote it: "0.72 (0.50–0.82)". */
export function withRange(value: number, xs: readonly number[], digits = 2): string {
  return `${value.toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
}

/**
 * Mann–Whitney U test (normal approximation with the tie correction): z > 0 when `a` tends to be
 * larger than `b`. |z| < 1.96 means no difference at the 5 % level.
 */
export function mannWhitney(a: readonly number[], b: readonly number[]): { u: number; z: number } {
  const all = [...a.map((v) => ({ v, fromA: true })), ...b.map((v) => ({ v, fromA: false }))].sort((x, y) => x.v - y.v);
  const n1 = a.length;
  const n2 = b.length;
  const n = n1 + n2;
  let rankSumA = 0;
  let tieTerm = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j + 1 < all.length && (all[j + 1] as { v: number }).v === (all[i] as { v: number }).v) j++;
    const rank = (i + j + 2) / 2; // ranks are 1-based; ties share the average
    const t = j - i + 1;
    tieTerm += t ** 3 - t;
    for (let k = i; k <= j; k++) if ((all[k] as { fromA: boolean }).fromA) rankSumA += rank;
    i = j + 1;
  }
  const u = rankSumA - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  return { u, z: variance > 0 ? (u - mean) / Math.sqrt(variance) : 0 };
}

/** 95 % bootstrap confidence interval of median(a) - median(b) (percentile method). */
export function bootstrapMedianDiff(a: readonly number[], b: readonly number[], rounds = 1000, seed = 7): { lo: number; hi: number } {
  const pickA = uniformOrder(a.length, seed);
  const pickB = uniformOrder(b.length, seed + 1);
  const resample = (xs: readonly number[], pick: () => number) => Array.from({ length: xs.length }, () => xs[pick()] as number);
  const diffs = Array.from({ length: rounds }, () => median(resample(a, pickA)) - median(resample(b, pickB))).sort((x, y) => x - y);
  return { lo: diffs[Math.floor(rounds * 0.025)] as number, hi: diffs[Math.ceil(rounds * 0.975) - 1] as number };
}
