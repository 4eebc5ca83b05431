/**
 * One read-modify-write in flight per session id in this process. Concurrent function-form
 * updates (and rotates) of one session wait their turn and start from the record the call
 * before them wrote, so they never conflict with each other: only writers in other
 * processes can, and those are retried with a jittered backoff (see `conflictBackoff`).
 */
export class KeyedQueue<R> {
  private tails = new Map<string, { done: Promise<void>; last: R | undefined }>();

  /**
   * Runs `task` once every earlier task for `key` has settled. `task` gets what the task just
   * before it returned (the record it wrote; when that one failed, what the one before it wrote),
   * undefined when it is the first.
   */
  run<T extends R | undefined>(key: string, task: (prev: R | undefined) => Promise<T>): Promise<T> {
    const before = this.tails.get(key);
    const entry: { done: Promise<void>; last: R | undefined } = { done: Promise.resolve(), last: undefined };
    const result = before ? before.done.then(() => task(before.last)) : task(undefined);
    entry.done = result.then(
      (r) => {
        entry.last = r;
        if (this.tails.get(key) === entry) this.tails.delete(key);
      },
      () => {
        entry.last = before?.last; // a failed call wrote nothing this process needs to know
        if (this.tails.get(key) === entry) this.tails.delete(key);
      },
    );
    this.tails.set(key, entry);
    return result;
  }

  /** Whether a task for `key` is running or waiting. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }
}

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
