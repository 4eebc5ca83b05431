import { randomUUID } from 'node:crypto';
import type { Backend } from './backend.js';
import { backendError } from './errors.js';
import { newRecord } from './session.js';

/** Whether a backend keeps what is written to it, and if not, why. */
export interface WriteHealth {
  writable: boolean;
  reason: string | null;
}

/**
 * Ids and the user of probe sessions hold spaces, which no caller-chosen id or user id may
 * (isValidId), so a probe never meets a real session.
 */
const PROBE = 'lapse write probe';
/** A probe that could not be removed ends by itself this soon, and the sweep takes it. */
const PROBE_TTL_MS = 1000;

/**
 * Tracks whether writes reach the backend. A backend failure seen anywhere marks writes as
 * doubtful; only then does `check()` write and remove a probe session, so a healthy backend is
 * never burdened, and a doubtful one is cleared as soon as a probe gets through (a node that a
 * load balancer took out of rotation gets no other writes to prove it recovered).
 */
export class WriteHealthTracker {
  private failure: string | null = null;

  constructor(private readonly backend: Backend) {}

  /** A backend call failed: writes are doubtful until a probe succeeds. */
  failed(message: string): void {
    this.failure = message;
  }

  /** The backend's own report (a memory snapshot that cannot be saved, say), then a probe if a failure was seen. */
  async check(now: number): Promise<WriteHealth> {
    const own = this.backend.health?.();
    if (own && !own.ok) return { writable: false, reason: own.reason ?? `the ${this.backend.name} backend cannot keep writes` };
    if (this.failure === null) return { writable: true, reason: null };
    try {
      await this.probe(now);
      this.failure = null;
      return { writable: true, reason: null };
    } catch (err) {
      return { writable: false, reason: backendError(err, `${this.backend.name} backend write probe failed`).message };
    }
  }

  private async probe(now: number): Promise<void> {
    const id = `${PROBE} ${randomUUID()}`;
    const rec = newRecord({ id, secretHash: '', userId: PROBE, data: 'null', now, idleTimeout: PROBE_TTL_MS, absoluteTimeout: PROBE_TTL_MS });
    // No caps in the policy: a probe must never evict a real session.
    await this.backend.insert(rec, now, {});
    await this.backend.remove(id, now, { force: true });
  }
}
