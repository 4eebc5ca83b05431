import type { SessionRecord } from '../../core/session.js';
import type { TouchArgs } from './transactions.js';

interface Pending extends TouchArgs {
  resolve: (rec: SessionRecord | null) => void;
  reject: (err: unknown) => void;
}

/** Touches written per transaction. */
const BATCH = 500;

/**
 * Group commit for touches: queued, then written up to BATCH per transaction on the next
 * turn of the event loop, a turn apart. The store flushes its coalesced accesses as
 * thousands of touches at once; one transaction each would hold the loop for seconds.
 */
export class TouchQueue {
  private queue: Pending[] = [];
  private running: Promise<void> | undefined;

  constructor(
    /** Writes one batch in one transaction, or throws (every touch of the batch fails with it). */
    private readonly write: (batch: TouchArgs[]) => (SessionRecord | null)[],
    /** Awaited before each batch while more than one batch is queued (checkpoint pacing). */
    private readonly pace: () => Promise<void>,
    /** Around each batch: waits for the sweep's chunk in progress and holds the next one back. */
    private readonly gate?: { enter(): Promise<void>; leave(): void },
  ) {}

  push(t: TouchArgs): Promise<SessionRecord | null> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...t, resolve, reject });
      this.running ??= this.run();
    });
  }

  /** Resolves once everything queued so far (and queued meanwhile) is written. */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  private async run(): Promise<void> {
    try {
      await nextTurn(); // gather what arrives during this turn into the first batch
      while (this.queue.length > 0) {
        // Only a bulk stream (the store's flush) waits for the checkpoint worker: a request's
        // touch written at once, or a validate would wait behind the sweep's catch-ups.
        if (this.queue.length > BATCH) await this.pace();
        const gate = this.gate;
        if (gate) {
          await gate.enter();
          try {
            this.writeBatch(this.queue.splice(0, BATCH));
          } finally {
            gate.leave();
          }
        } else this.writeBatch(this.queue.splice(0, BATCH));
        if (this.queue.length > 0) await nextTurn();
      }
    } finally {
      // Reached with the queue empty and no await since the last check: nothing is stranded.
      this.running = undefined;
    }
  }

  private writeBatch(batch: Pending[]): void {
    let results: (SessionRecord | null)[];
    try {
      results = this.write(batch);
    } catch (err) {
      for (const t of batch) t.reject(err);
      return;
    }
    for (const [i, t] of batch.entries()) t.resolve(results[i] ?? null);
  }
}

/** Resolves on the next turn of the event loop. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
