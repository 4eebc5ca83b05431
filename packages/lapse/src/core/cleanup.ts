import { backendError } from './errors.js';

/**
 * Runs every step of a close() even when one fails, then reports the first failure.
 * @example
 * const steps = new CleanupSteps();
 * await steps.run(() => timers.stop());
 * await steps.run(() => db.close());
 * steps.finish('closing the store failed');
 */
export class CleanupSteps {
  private readonly errors: unknown[] = [];

  /** Runs one step; a failure is kept for finish() instead of stopping the others. */
  async run(fn: () => unknown): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.errors.push(err);
    }
  }

  /** Throws the first failure, as a LapseError with `what` in its message, if any step failed. */
  finish(what: string): void {
    if (this.errors.length > 0) throw backendError(this.errors[0], what);
  }
}
