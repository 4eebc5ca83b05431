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
// The write gate shared with the event loop's thread: [0] is 1 while this thread may hold the
// write lock, [1] counts that thread's writes waiting or running. This thread starts no write
// while one is (waiting up to 50 ms), so a request's write never sleeps in SQLite's busy handler
// behind a sweep chunk: it waits (asynchronously) for the chunk in progress, then goes first.
const gate = new Int32Array(workerData.gate);
const enter = () => {
  const until = performance.now() + 50;
  for (;;) {
    Atomics.store(gate, 0, 1);
    const waiting = Atomics.load(gate, 1);
    if (waiting === 0) return;
    Atomics.store(gate, 0, 0);
    Atomics.notify(gate, 0);
    const left = until - performance.now();
    if (left <= 0) {
      Atomics.store(gate, 0, 1);
      return;
    }
    Atomics.wait(gate, 1, waiting, left);
  }
};
const leave = () => {
  Atomics.store(gate, 0, 0);
  Atomics.notify(gate, 0);
};
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
const catchUp = () => {
  try {
    let r;
    let tries = 0;
    do r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    while (r.checkpointed < r.log && ++tries < 50);
    if (r.log > 1 && r.checkpointed >= r.log) {
      enter();
      try {
        restart.run();
      } finally {
        leave();
      }
    }
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  }
};
const answerCatchUp = (ask) => {
  catchUp();
  parentPort.postMessage({ answer: ask });
  timer = setTimeout(loop, workerData.intervalMs);
};
// The sweep's DELETEs run here too, one chunk per ask, so that neither a chunk's page reads,
// index and trigger work, nor a commit that meets the disk's writeback, blocks the event loop.
// A chunk aims at workerData.sliceMs (rows adapted to it, growing at most twofold a step); the
// write lock is free between chunks, while the ask goes round, so a request's write waits for
// one chunk at most. Every rowsPerCheckpoint rows it catches up with the WAL first, here.
let sweepTx;
let sweepChunk = workerData.sweep.minChunk;
let sweptSinceCatchUp = 0;
const sweep = (msg) => {
  let rows = [];
  let want = 0;
  let failed;
  try {
    if (sweptSinceCatchUp >= workerData.sweep.rowsPerCheckpoint) {
      sweptSinceCatchUp = 0;
      catchUp();
    }
    if (!sweepTx) {
      const st = db.prepare(workerData.sweep.sql).raw();
      sweepTx = db.transaction((now, n) => st.all(now, n)).immediate;
    }
    want = Math.max(1, Math.min(sweepChunk, msg.limit));
    enter();
    const started = performance.now();
    try {
      rows = sweepTx(msg.now, want);
    } finally {
      leave();
    }
    const took = performance.now() - started;
    sweptSinceCatchUp += rows.length;
    // RETURNING gives no order; callers get soonest-expired first.
    rows.sort((a, b) => a[2] - b[2]);
    if (rows.length === want) {
      const next = Math.round((want * workerData.sweep.sliceMs) / Math.max(took, 0.1));
      sweepChunk = Math.max(workerData.sweep.minChunk, Math.min(next, want * 2, workerData.sweep.maxChunk));
    }
  } catch (err) {
    failed = String((err && err.message) || err);
  }
  parentPort.postMessage({ sweep: msg.sweep, rows, full: rows.length === want, failed });
};
parentPort.on('message', (msg) => {
  if (msg !== null && typeof msg === 'object') {
    if (!closed) sweep(msg);
    else parentPort.postMessage({ sweep: msg.sweep, rows: [], full: false, failed: 'the checkpoint worker is closing' });
    return;
  }
  if (typeof msg === 'number') {
    clearTimeout(timer);
    if (!closed) answerCatchUp(msg);
    return;
  }
  if (msg !== 'close') return;
  closed = true;
  clearTimeout(timer);
  try { run(); } finally { db.close(); parentPort.close(); }
});
`;

/** How the worker sizes the sweep's chunks (see SqliteBackend.sweep). */
export interface SweepTuning {
  /** The DELETE … RETURNING id, user_id, expires_at, absolute_expires_at of one chunk. */
  sql: string;
  sliceMs: number;
  minChunk: number;
  maxChunk: number;
  rowsPerCheckpoint: number;
}

/** One chunk of the sweep, as the worker answers it: the rows removed, and whether it was full. */
export interface SweptChunk {
  /** [id, user_id, expires_at, absolute_expires_at] of each row removed. */
  rows: [string, string | null, number, number][];
  /** False when fewer rows than asked were due: nothing expired is left. */
  full: boolean;
}

/** Atomics.waitAsync (Node 16+), not in the ES2022 lib this package compiles against. */
interface AsyncAtomics {
  waitAsync(a: Int32Array, index: number, value: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}

export interface CheckpointerOptions {
  path: string;
  sweep: SweepTuning;
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
  /** See the worker's `gate`: [0] the worker may hold the write lock, [1] our writes waiting or running. */
  private readonly gate = new Int32Array(new SharedArrayBuffer(8));
  private sweeps = new Map<number, { resolve: (c: SweptChunk | null) => void; reject: (err: Error) => void }>();

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
        sweep: opts.sweep,
        gate: this.gate.buffer,
      },
    });
    this.worker.unref();
    this.worker.on('message', (msg: { error?: string; answer?: number; sweep?: number; failed?: string } & Partial<SweptChunk>) => {
      if (msg.error !== undefined) opts.onError(msg.error);
      if (msg.answer !== undefined) this.waiters.get(msg.answer)?.();
      if (msg.sweep !== undefined) {
        const w = this.sweeps.get(msg.sweep);
        this.sweeps.delete(msg.sweep);
        if (msg.failed !== undefined) w?.reject(new Error(msg.failed));
        else w?.resolve({ rows: msg.rows ?? [], full: msg.full === true });
      }
    });
    this.worker.on('error', (err) => opts.onError(err.message));
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', () => {
        this.exitedNow = true;
        this.wake();
        for (const w of this.sweeps.values()) w.resolve(null);
        this.sweeps.clear();
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

  /**
   * Removes one chunk of expired sessions on the worker's connection: up to `limit` rows due at
   * `now`, soonest first, in one transaction sized to the slice. Null when the worker is gone
   * (closed): nothing more is removed. A chunk asked before close() is still answered.
   */
  sweepChunk(now: number, limit: number): Promise<SweptChunk | null> {
    if (this.closing || this.exitedNow) return Promise.resolve(null);
    const ask = ++this.asked;
    return new Promise((resolve, reject) => {
      this.sweeps.set(ask, { resolve, reject });
      this.worker.postMessage({ sweep: ask, now, limit });
    });
  }

  /**
   * Before a write on the event loop's connection: resolves once the worker holds no write lock,
   * and keeps it from taking one until `leave()` (or 50 ms). The wait is asynchronous, and
   * bounded: after 100 ms the write goes anyway (SQLite's busy timeout still applies).
   */
  async enter(): Promise<void> {
    const gate = this.gate;
    Atomics.add(gate, 1, 1);
    const until = performance.now() + 100;
    while (Atomics.load(gate, 0) === 1 && !this.exitedNow) {
      const left = until - performance.now();
      if (left <= 0) return;
      const w = (Atomics as unknown as AsyncAtomics).waitAsync(gate, 0, 1, left);
      if (w.async) await w.value;
    }
  }

  /** After the write that enter() let through. */
  leave(): void {
    Atomics.sub(this.gate, 1, 1);
    Atomics.notify(this.gate, 1);
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
