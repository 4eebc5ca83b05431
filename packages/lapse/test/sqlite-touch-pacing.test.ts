import { describe, expect, it } from 'vitest';
import { nextTurn, TouchQueue } from '../src/backends/sqlite/touch-queue.js';
import type { TouchArgs } from '../src/backends/sqlite/transactions.js';

/** Resolves after `n` turns of the event loop. */
async function turns(n: number): Promise<'still waiting'> {
  for (let i = 0; i < n; i++) await nextTurn();
  return 'still waiting';
}

/** A queue whose pacing never ends (a checkpoint worker that cannot catch up), counting its calls. */
function stuckQueue() {
  const written: TouchArgs[][] = [];
  let paced = 0;
  const queue = new TouchQueue(
    (batch) => {
      written.push(batch);
      return batch.map(() => null);
    },
    () => {
      paced++;
      return new Promise<void>(() => {});
    },
  );
  return { queue, written, paced: () => paced };
}

const touch = (i: number): TouchArgs => ({ id: `s${i}`, at: 1, accesses: 1, now: 1 });

describe('SQLite touch queue pacing', () => {
  it("a request's touch is written at once, never held by the checkpoint pacing of bulk writers", async () => {
    const { queue, written, paced } = stuckQueue();
    const result = await Promise.race([queue.push(touch(1)), turns(20)]);
    expect(result).toBeNull();
    expect(written).toHaveLength(1);
    expect(paced()).toBe(0);
  });

  it('a bulk stream (more than one batch queued) still waits for the checkpoint worker', async () => {
    const { queue, written, paced } = stuckQueue();
    for (let i = 0; i < 1200; i++) void queue.push(touch(i));
    await turns(20);
    expect(paced()).toBe(1);
    expect(written).toHaveLength(0);
  });
});
