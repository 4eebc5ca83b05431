import { describe, expect, it } from 'vitest';
import { inTurns, type OpsResult, uniformOrder } from '../../../bench/lib.js';

/** A side that reports a fixed throughput per round and logs when it ran. */
function side(name: string, perRound: number[], log: string[]) {
  let round = 0;
  return async (): Promise<OpsResult> => {
    log.push(name);
    const opsPerSec = perRound[round++] as number;
    return { name, ops: opsPerSec, opsPerSec, nsPerOp: 1e9 / opsPerSec };
  };
}

describe('bench helpers', () => {
  it('uniformOrder: the same seed gives the same draws, spread over the whole range', () => {
    const a = uniformOrder(100);
    const b = uniformOrder(100);
    const other = uniformOrder(100, 12345);
    const counts = new Array<number>(100).fill(0);
    let differs = false;
    for (let i = 0; i < 100_000; i++) {
      const x = a();
      expect(b()).toBe(x);
      if (other() !== x) differs = true;
      counts[x] = (counts[x] as number) + 1;
    }
    expect(differs).toBe(true);
    // 1000 expected per bucket: every index drawn, none far from its share.
    expect(Math.min(...counts)).toBeGreaterThan(800);
    expect(Math.max(...counts)).toBeLessThan(1200);
  });

  it('inTurns: rotates the order every round and takes the median per-round ratio to the base', async () => {
    const log: string[] = [];
    const { results, ratios } = await inTurns(3, [
      side('a', [10, 30, 20], log),
      side('m', [5, 5, 5], log),
      side('b', [20, 20, 40], log),
    ]);
    expect(log).toEqual(['a', 'm', 'b', 'm', 'b', 'a', 'b', 'a', 'm']);
    // a/b per round: 0.5, 1.5, 0.5 -> median 0.5 (not the ratio of the medians, 20/20 = 1).
    expect(ratios[0]).toBe(0.5);
    expect(ratios[1]).toBe(0.25);
    expect(ratios[2]).toBe(1);
    expect(results.map((r) => r.opsPerSec)).toEqual([20, 5, 20]);
  });
});

describe('bench statistics', () => {
  it('median, Mann–Whitney and the bootstrap interval tell a real shift from none', async () => {
    const { bootstrapMedianDiff, mannWhitney, median } = await import('../../../bench/stats.js');
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    // Deterministic, interleaved "samples": b is a shifted by 5.
    const a = Array.from({ length: 400 }, (_, i) => 100 + ((i * 37) % 50));
    const b = a.map((x) => x + 5);
    const same = mannWhitney(a, [...a].reverse());
    expect(Math.abs(same.z)).toBeLessThan(0.01);
    const shifted = mannWhitney(b, a);
    expect(shifted.z).toBeGreaterThan(3);
    expect(mannWhitney(a, b).z).toBeCloseTo(-shifted.z, 6);
    const ci = bootstrapMedianDiff(b, a, 500);
    expect(ci.lo).toBeLessThanOrEqual(5);
    expect(ci.hi).toBeGreaterThanOrEqual(5);
    const none = bootstrapMedianDiff(a, [...a].reverse(), 500);
    expect(none.lo).toBeLessThanOrEqual(0);
    expect(none.hi).toBeGreaterThanOrEqual(0);
  });
});
