/**
 * Group commit: calls of one kind that arrive while the backend is busy go to the server
 * together, as one statement (one round trip, one transaction, one WAL flush for all of them).
 * At most `lanes` batches of a kind are in flight; a call that finds a lane free waits only for
 * the end of the current turn of the event loop (setImmediate), so that the calls of that turn
 * (the requests that arrived together) share its statement. Each call gets its own answer.
 */
export class Batcher<I, O> {
  private pending: Waiting<I, O>[] = [];
  private inflight = 0;
  private scheduled = false;

  /**
   * @param send runs one batch: one answer per item, in order (an Error fails that item alone;
   *   a Promise answers it later, without holding up the others); a rejection fails every item.
   */
  constructor(
    private readonly send: (items: I[]) => Promise<(O | Error | Promise<O>)[]>,
    private readonly max: number,
    private readonly lanes: number,
  ) {}

  push(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.scheduled || this.inflight >= this.lanes || this.pending.length === 0) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    while (this.inflight < this.lanes && this.pending.length > 0) {
      const batch = this.pending.splice(0, this.max);
      this.inflight++;
      this.send(batch.map((w) => w.item))
        .then(
          (out) => {
            for (let i = 0; i < batch.length; i++) {
              const w = batch[i] as Waiting<I, O>;
              const o = out[i] as O | Error | Promise<O>;
              if (o instanceof Error) w.reject(o);
              else w.resolve(o);
            }
          },
          (err: unknown) => {
            for (const w of batch) w.reject(err);
          },
        )
        .finally(() => {
          this.inflight--;
          this.kick();
        });
    }
  };
}

interface Waiting<I, O> {
  item: I;
  resolve: (o: O | PromiseLike<O>) => void;
  reject: (err: unknown) => void;
}
