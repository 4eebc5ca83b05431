/** What a process needs to shut the service down; injectable for tests. */
export interface ShutdownOptions {
  signals?: NodeJS.Signals[];
  /** Give up waiting and exit 1 after this long. */
  forceAfterMs?: number;
  exit?: (code: number) => void;
  log?: (message: string) => void;
}

/**
 * On the first SIGTERM/SIGINT runs `close` (stop accepting, finish in-flight requests, stop
 * the scheduler, close the store) and exits 0, or 1 when it failed. A second signal exits at
 * once. Returns a function that removes the handlers.
 * @example onShutdown(() => app.close());
 */
export function onShutdown(close: () => Promise<void>, opts: ShutdownOptions = {}): () => void {
  const signals = opts.signals ?? ['SIGTERM', 'SIGINT'];
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  let closing = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (closing) {
      log(`lapse: ${signal} again, exiting now`);
      exit(1);
      return;
    }
    closing = true;
    log(`lapse: ${signal} received, shutting down`);
    // Deliberately not unref'd: besides bounding the shutdown, it keeps the process up while
    // close() waits on handles that are (the SQLite checkpoint worker's last checkpoint).
    const force = setTimeout(() => {
      log('lapse: shutdown took too long, exiting');
      exit(1);
    }, opts.forceAfterMs ?? 15_000);
    close().then(
      () => {
        clearTimeout(force);
        exit(0);
      },
      (err: unknown) => {
        clearTimeout(force);
        log(`lapse: shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
        exit(1);
      },
    );
  };
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
  };
}
