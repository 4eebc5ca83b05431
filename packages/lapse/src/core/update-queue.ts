/**
 * One read-modify-write in flight per session id in this process. Calls for one session wait
 * their turn and start from the record the call before them wrote (no read, no conflict);
 * function-form updates that queued up behind one in flight go together as one batch: their
 * functions run one after the other, each on the previous one's result, and one write carries
 * them all. Only writers in other processes can make a write miss; those are retried with a
 * jittered backoff (see `conflictBackoff`).
 */
export class UpdateQueue<R> {
  private lines = new Map<string, Line<R>>();

  /** Runs `task` alone, in turn; it gets what the last call for `key` wrote (see Line.last). */
  run<T extends R>(key: string, task: (last: R | undefined) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.push(key, { group: undefined, step: undefined, run: task as (last: R | undefined) => Promise<R>, resolve: resolve as (r: R) => void, reject });
    });
  }

  /**
   * Joins the batch of calls in `group` for `key` (`step` is this call's part). `batch` runs the
   * steps that are queued together and returns the record written and the steps that failed
   * on their own (their callers get that error; the others get the record).
   */
  join<S>(key: string, group: string, step: S, batch: Batch<R, S>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.push(key, { group, step, run: batch as Batch<R, unknown>, resolve, reject });
    });
  }

  private push(key: string, item: Item<R>): void {
    let line = this.lines.get(key);
    if (!line) {
      line = { items: [], running: false, last: undefined };
      this.lines.set(key, line);
    }
    line.items.push(item);
    if (!line.running) void this.pump(key, line);
  }

  private async pump(key: string, line: Line<R>): Promise<void> {
    line.running = true;
    while (line.items.length > 0) {
      const first = line.items.shift() as Item<R>;
      if (first.group === undefined) {
        try {
          const r = await (first.run as (last: R | undefined) => Promise<R>)(line.last);
          line.last = r;
          first.resolve(r);
        } catch (err) {
          first.reject(err); // a failed call wrote nothing this process needs to know
        }
        continue;
      }
      const items = [first];
      while (line.items[0]?.group === first.group) items.push(line.items.shift() as Item<R>);
      try {
        const { record, failed } = await (first.run as Batch<R, unknown>)(items.map((i) => i.step), line.last);
        if (record !== undefined) line.last = record;
        items.forEach((it, i) => {
          if (failed.has(i)) it.reject(failed.get(i));
          else it.resolve(record as R);
        });
      } catch (err) {
        for (const it of items) it.reject(err);
      }
    }
    line.running = false;
    this.lines.delete(key);
  }
}

/**
 * Runs queued steps together: the record written (undefined when every step failed and nothing
 * was written), and the index → error of steps that failed alone.
 */
export type Batch<R, S> = (steps: S[], last: R | undefined) => Promise<{ record: R | undefined; failed: Map<number, unknown> }>;

interface Item<R> {
  group: string | undefined;
  step: unknown;
  run: ((last: R | undefined) => Promise<R>) | Batch<R, unknown>;
  resolve: (r: R) => void;
  reject: (err: unknown) => void;
}

interface Line<R> {
  items: Item<R>[];
  running: boolean;
  /** What the last call for this key that succeeded wrote (a failed one wrote nothing). */
  last: R | undefined;
}

/**
 * Internal option of store.update(): the session as the caller last read it (the HTTP
 * integrations pass the one the request validated), to start from when this process knows no
 * newer one, saving a read; a stale one costs a retry, never a lost update.
 */
export const UPDATE_BASIS: unique symbol = Symbol('lapse.updateBasis');

/**
 * How long to wait before retry `attempt` (1, 2, …) after another process's write won:
 * "full jitter", a random wait up to 1, 2, 4 … capped at 50 ms, so contending processes spread out.
 */
export function conflictBackoff(attempt: number): Promise<void> {
  if (attempt <= 1) return Promise.resolve();
  const cap = Math.min(50, 2 ** (attempt - 2));
  // A short timer someone awaits: not unref'd, so the process does not exit under the caller.
  return new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
}
