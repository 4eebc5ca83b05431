/**
 * The benchmarks measure the compiled library in dist/ (what users run; `npm run bench`
 * builds first), not src/ through tsx, whose transform adds work to every closure.
 *
 * Small shared helpers for the benchmarks: timed loops, event-loop block tracking,
 * a progress line on a terminal, and result files in bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

export interface OpsResult {
  name: string;
  ops: number;
  opsPerSec: number;
  nsPerOp: number;
  /** This process's CPU time (user + system) per operation, in µs, where measured. */
  cpuUsPerOp?: number;
}

/** `callers` loops calling `fn` at once for about `ms` after a warm-up; total throughput and CPU per op. */
export async function concurrent(name: string, fn: (i: number) => Promise<unknown>, callers: number, ms: number): Promise<OpsResult> {
  let i = 0;
  const loop = async (until: number): Promise<number> => {
    let n = 0;
    while (performance.now() < until) {
      await fn(i++);
      n++;
    }
    return n;
  };
  await Promise.all(Array.from({ length: callers }, () => loop(performance.now() + Math.min(300, ms / 4)))); // warm-up
  const cpu = process.cpuUsage();
  const start = performance.now();
  const counts = await Promise.all(Array.from({ length: callers }, () => loop(start + ms)));
  const elapsed = performance.now() - start;
  const used = process.cpuUsage(cpu);
  const ops = counts.reduce((a, b) => a + b, 0);
  const res = { name, ops, opsPerSec: (ops / elapsed) * 1000, nsPerOp: (elapsed * 1e6) / ops, cpuUsPerOp: (used.user + used.system) / ops };
  progress(`${name}: ${fmt(res.opsPerSec)} ops/s`);
  return res;
}

/** Runs `fn` (sync or async) for about `ms` milliseconds after a warm-up; returns throughput. */
export async function measure(name: string, fn: (i: number) => unknown, ms = 1500): Promise<OpsResult> {
  const warmEnd = performance.now() + Math.min(300, ms / 4);
  let i = 0;
  while (performance.now() < warmEnd) {
    for (let k = 0; k < 100; k++) {
      const r = fn(i++);
      if (r instanceof Promise) await r;
    }
  }
  const start = performance.now();
  const end = start + ms;
  let ops = 0;
  while (performance.now() < end) {
    for (let k = 0; k < 200; k++) {
      const r = fn(i++);
      if (r instanceof Promise) await r;
    }
    ops += 200;
  }
  const elapsed = performance.now() - start;
  const res = { name, ops, opsPerSec: (ops / elapsed) * 1000, nsPerOp: (elapsed * 1e6) / ops };
  progress(`${name}: ${fmt(res.opsPerSec)} ops/s`);
  return res;
}

/**
 * Contenders measured in turns, `rounds` times, the order rotated every round (two sides swap):
 * on a shared machine, neighbouring runs share the load of the moment, so each side's ratio
 * to the side at `base` is the median of its per-round ratios, and each side keeps its median round.
 */
export async function inTurns(
  rounds: number,
  sides: (() => Promise<OpsResult>)[],
  base = sides.length - 1,
): Promise<{ results: OpsResult[]; ratios: number[]; runs: OpsResult[][] }> {
  const runs: OpsResult[][] = sides.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < sides.length; k++) {
      const s = (k + round) % sides.length;
      (runs[s] as OpsResult[]).push(await (sides[s] as () => Promise<OpsResult>)());
    }
  }
  const baseRuns = runs[base] as OpsResult[];
  const ratios = runs.map((list) => roundRatios(list, baseRuns)[Math.floor(rounds / 2)] as number);
  return { results: runs.map(medianRound), ratios, runs };
}

/** The ratios of two sides' rounds taken in the same turns (a[i] / b[i]), sorted: their median is the figure quoted. */
export function roundRatios(a: readonly OpsResult[], b: readonly OpsResult[]): number[] {
  return a.map((r, i) => r.opsPerSec / (b[i] as OpsResult).opsPerSec).sort((x, y) => x - y);
}

/** Two contenders in turns (see inTurns): each side's median round, and the median per-round ratio a / b. */
export async function alternate(
  rounds: number,
  a: () => Promise<OpsResult>,
  b: () => Promise<OpsResult>,
): Promise<{ a: OpsResult; b: OpsResult; ratio: number }> {
  const { results, ratios } = await inTurns(rounds, [a, b]);
  return { a: results[0] as OpsResult, b: results[1] as OpsResult, ratio: ratios[0] as number };
}

/**
 * A fixed pseudo-random order over `n` items (xorshift32 from `seed`): each call of the
 * returned function gives the next index. Two sides made with the same seed see the same
 * items in the same order, and a side's cursor carries on across its turns, so uniform
 * traffic stays uniform instead of restarting at item 0 every turn.
 */
export function uniformOrder(n: number, seed = 2463534242): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

/** The median of a list of rounds, by throughput. */
export function medianRound(list: OpsResult[]): OpsResult {
  return [...list].sort((x, y) => x.opsPerSec - y.opsPerSec)[Math.floor(list.length / 2)] as OpsResult;
}

/** Tracks the longest event-loop block while `work` runs. */
export async function withLoopMonitor<T>(work: () => Promise<T>): Promise<{ result: T; maxBlockMs: number; totalMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  let maxGap = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const t = performance.now();
    maxGap = Math.max(maxGap, t - last);
    last = t;
  }, 1);
  h.enable();
  const start = performance.now();
  const result = await work();
  const totalMs = performance.now() - start;
  h.disable();
  clearInterval(ticker);
  const t = performance.now();
  maxGap = Math.max(maxGap, t - last);
  return { result, maxBlockMs: Math.max(h.max / 1e6, maxGap), totalMs };
}

/** Heap bytes in use after a full GC (run node with --expose-gc). */
export function heapUsed(): number {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
  return process.memoryUsage().heapUsed;
}

/** Human number: 1234567 -> '1.23M'. */
export function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(n < 10 ? 2 : 0);
}

/** One status line on a terminal (overwritten in place), plain lines otherwise. */
export function progress(line: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${line}`);
  else process.stderr.write(`${line}\n`);
}

/** Writes bench/results/<name>.json and <name>.md (a Markdown table) and prints the table. */
export function writeResults(name: string, title: string, rows: Record<string, string | number>[], notes: string[] = []): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const loadavg = os.loadavg().map((l) => Math.round(l * 100) / 100);
  const meta = { date: new Date().toISOString(), node: process.version, cpus: 2, loadavg, title };
  writeFileSync(join(RESULTS_DIR, `${name}.json`), `${JSON.stringify({ ...meta, rows, notes }, null, 2)}\n`);
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const table = [
    `| ${cols.join(' | ')} |`,
    `| ${cols.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${cols.map((c) => String(r[c] ?? '')).join(' | ')} |`),
  ].join('\n');
  const md = `# ${title}\n\n${meta.date}, Node ${meta.node}, 2 cores, load average ${loadavg.join(' / ')} (1 / 5 / 15 min) when written.\n\n${table}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
  writeFileSync(join(RESULTS_DIR, `${name}.md`), md);
  if (process.stderr.isTTY) process.stderr.write('\n');
  console.log(md);
}
