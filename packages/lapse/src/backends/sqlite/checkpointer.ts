import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How long close() waits for the worker to finish a checkpoint before it stops it. */
const CLOSE_GRACE_MS = 5_000;

// Plain JS evaluated in the worker, so the same code runs from src (tsx, vitest) and dist.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { timeout: workerData.busyTimeoutMs });
db.pragma('synchronous = ' + workerData.synchronous);
let timer;
let closed = false;
// One PASSIVE checkpoint (it never waits for a lock); true when frames were left behind.
const run = () => {
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    return r.log > 0 && r.checkpointed < r.log;
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
    return false;
  }
};
// While writes keep coming, go again at once: the WAL only starts over from its beginning
// (on the next commit) once a checkpoint has caught up with the last one.
const loop = () => {
  if (closed) return;
  timer = setTimeout(loop, run() ? 1 : workerData.intervalMs);
};
timer = setTimeout(loop, workerData.intervalMs);
// A commit that changes nothing: made right after a complete checkpoint, it is the one that
// starts the WAL over and fsyncs the new WAL header.
const restart = db.prepare("UPDATE lapse_meta SET value = value WHERE key = 'fence'");
// Asked by a bulk writer that now waits (asynchronously) for the answer: it is not writing,
// so finish the checkpoint and make the restarting commit here, on this thread, instead of
// leaving that fsync to the writer's next commit on the event loop.
const catchUp = (ask) => {
  try {
    let r;
    let tries = 0;
    do r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    while (r.checkpointed < r.log && ++tries < 50);
    if (r.log > 1 && r.checkpointed >= r.log) restart.run();
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  }
  parentPort.postMessage({ answer: ask });
  timer = setTimeout(loop, workerData.intervalMs);
};
parentPort.on('message', (msg) => {
  if (typeof msg === 'number') {
    clearTimeout(timer);
    if (!closed) catchUp(msg);
    return;
  }
  if (msg !== 'close') return;
  closed = true;
  clearTimeout(timer);
  try { run(); } finally { db.close(); parentPort.close(); }
});
`;

export interface CheckpointerOptions {
  path: string;
  intervalMs: number;
  busyTimeoutMs: number;
  synchronous: 'normal' | 'full';
  /** Told about a failed checkpoint (the backstop autocheckpoint still bounds the WAL). */
  onError: (message: string) => void;
}

/**
 * Copies the WAL back into the database from a worker thread with its own connection.
 * A checkpoint writes pages and fsyncs; done by SQLite's autocheckpoint it would run
 * inside whichever commit crossed the threshold and block the event loop for as long
 * as the disk takes.
 */
export class Checkpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  private closing: Promise<void> | undefined;
  private exitedNow = false;
  private waiters = new Map<number, () => void>();
  private asked = 0;

  constructor(opts: CheckpointerOptions) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driver,
        path: opts.path,
        intervalMs: opts.intervalMs,
        busyTimeoutMs: opts.busyTimeoutMs,
        synchronous: opts.synchronous === 'full' ? 'FULL' : 'NORMAL',
      },
    });
    this.worker.unref();
    this.worker.on('message', (msg: { error?: string; answer?: number }) => {
      if (msg.error !== undefined) opts.onError(msg.error);
      if (msg.answer !== undefined) this.waiters.get(msg.answer)?.();
    });
    this.worker.on('error', (err) => opts.onError(err.message));
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', () => {
        this.exitedNow = true;
        this.wake();
        resolve();
      }),
    );
  }

  /**
   * Resolves once the worker has copied the whole WAL back, or after `maxMs`. A bulk writer
   * (the sweep) awaits this between transactions: without the pause the worker could never
   * catch up, the WAL could never start over, and it would grow to the backstop, where
   * SQLite checkpoints on the event loop. After it, the next commit starts the WAL over.
   */
  drained(maxMs: number): Promise<void> {
    if (this.closing || this.exitedNow) return Promise.resolve();
    const ask = ++this.asked;
    this.worker.postMessage(ask);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(ask);
        resolve();
      };
      const timer = setTimeout(done, maxMs);
      timer.unref();
      this.waiters.set(ask, done);
    });
  }

  /** Runs a last checkpoint and stops the worker; safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.wake();
      // Hold the process open until the worker's last checkpoint is done and its connection closed.
      this.worker.ref();
      this.worker.postMessage('close');
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), CLOSE_GRACE_MS);
        timer.unref();
      });
      if ((await Promise.race([this.exited, late])) === 'late') await this.worker.terminate();
      clearTimeout(timer);
    })();
    return this.closing;
  }

  private wake(): void {
    for (const done of [...this.waiters.values()]) done();
  }
}
