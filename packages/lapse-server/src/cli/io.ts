import type { Readable } from 'node:stream';
import type { ProgressStream } from './progress.js';

/** What a command reads and writes: the process's streams, or buffers in tests. */
export interface CliIO {
  stdout: ProgressStream;
  stderr: ProgressStream;
  stdin: Readable;
  env: NodeJS.ProcessEnv;
}

/** The real process streams. */
export function processIO(): CliIO {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

/** Prints rows as aligned columns (the human form of a listing). */
export function table(io: CliIO, rows: Record<string, unknown>[], columns: string[]): void {
  if (rows.length === 0) {
    io.stdout.write('(none)\n');
    return;
  }
  const cell = (v: unknown): string => (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  io.stdout.write(`${line(columns)}\n`);
  for (const r of rows) io.stdout.write(`${line(columns.map((c) => cell(r[c])))}\n`);
}

/** Prints a value as JSON (the --json form). */
export function json(io: CliIO, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** An epoch-ms time as ISO text for tables. */
export function iso(ms: number | null | undefined): string {
  return typeof ms === 'number' ? new Date(ms).toISOString() : '-';
}
