/** Where a progress line is drawn: a terminal stream (nothing is drawn when it is not a TTY). */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): unknown;
}

/** A progress line on a terminal: a bar when the total is known, a spinner otherwise. */
export interface Progress {
  /** Sets how far along we are (and the total, when it becomes known). */
  update(done: number, total?: number): void;
  /** Clears the line; a final message, if any, is written in its place. */
  finish(message?: string): void;
}

const SPINNER = ['|', '/', '-', '\\'];
const REDRAW_MS = 100;

/**
 * A tiny TTY progress bar for long CLI commands (export, import, sweep). Redraws at most ten
 * times a second, with no timer; draws nothing when the stream is not a terminal.
 * @example
 * const bar = progress({ label: 'export', total: 10_000 });
 * for (...) bar.update(++n);
 * bar.finish('exported 10000 sessions');
 */
export function progress(opts: { label: string; total?: number; stream?: ProgressStream; unit?: string }): Progress {
  const stream = opts.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  let total = opts.total;
  let done = 0;
  let drawnAt = 0;
  let frame = 0;
  let finished = false;

  const draw = (): void => {
    const unit = opts.unit ? ` ${opts.unit}` : '';
    let line: string;
    if (total !== undefined && total > 0) {
      const ratio = Math.min(1, done / total);
      const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - opts.label.length - 30));
      const filled = Math.round(ratio * width);
      line = `${opts.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(ratio * 100)}% ${done}/${total}${unit}`;
    } else {
      line = `${opts.label} ${SPINNER[frame++ % SPINNER.length]} ${done}${unit}`;
    }
    stream.write(`\r\x1b[2K${line}`);
  };

  return {
    update(n, t) {
      if (finished) return;
      done = n;
      if (t !== undefined) total = t;
      if (!tty) return;
      const now = Date.now();
      if (now - drawnAt < REDRAW_MS) return;
      drawnAt = now;
      draw();
    },
    finish(message) {
      if (finished) return;
      finished = true;
      if (tty) stream.write('\r\x1b[2K');
      if (message !== undefined && tty) stream.write(`${message}\n`);
    },
  };
}
