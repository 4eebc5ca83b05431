import type { LockState } from './session.js';

/** A lease on one session, as `store.lock` grants it. */
export interface Lease {
  /** The session id. */
  readonly id: string;
  /** Grows with every grant: pass it to writers so a stale holder is refused. */
  readonly fence: number;
  readonly owner: string;
  /** When the lease ends by itself unless extended. */
  expiresAt: number;
  /** Pushes expiresAt to now + ttl (default: the lease's own length). */
  extend(ttl?: number | string): Promise<Lease>;
  /** Ends the lease; false when it had already ended or been taken over. */
  release(): Promise<boolean>;
}

/** What a write accepts as proof of holding the lease. */
export type LeaseRef = Lease | number;

/** The fencing number behind a lease reference. */
export function fenceOf(lease: LeaseRef | undefined): number | undefined {
  if (lease === undefined) return undefined;
  return typeof lease === 'number' ? lease : lease.fence;
}

/** Builds a Lease over a granted LockState. */
export function makeLease(
  id: string,
  state: LockState,
  ttl: number,
  ops: { extend(fence: number, ttl: number): Promise<LockState>; release(fence: number): Promise<boolean> },
  parseTtl: (v: number | string) => number,
): Lease {
  const lease: Lease = {
    id,
    fence: state.fence,
    owner: state.owner,
    expiresAt: state.expiresAt,
    async extend(next) {
      const s = await ops.extend(state.fence, next === undefined ? ttl : parseTtl(next));
      lease.expiresAt = s.expiresAt;
      return lease;
    },
    release: () => ops.release(state.fence),
  };
  return lease;
}
