import type { TimerClock } from 'lapse/internal';
import { VALIDATE_BUCKETS } from '../metrics.js';

/** One point of the console's charts; rates are over the interval that ends at `t`. */
export interface SeriesPoint {
  /** Epoch ms. */
  t: number;
  /** Stored sessions. */
  sessions: number;
  /** Live connections (cluster-wide with presence on Redis). */
  connections: number;
  /** Sessions per minute. */
  created: number;
  expired: number;
  evicted: number;
  revoked: number;
  /** Validations per second. */
  validations: number;
  /** Validate latency quantiles over the interval, ms (null: no validation in it). */
  p50: number | null;
  p99: number | null;
  /** Backend failures in the interval. */
  backendErrors: number;
}

/** The counters and gauges a point shows; a reading holds them cumulative, a point as rates. */
type SeriesCounters = Pick<SeriesPoint, 'sessions' | 'connections' | 'created' | 'expired' | 'evicted' | 'revoked' | 'validations' | 'backendErrors'>;

/** What a sample reads: cumulative counters plus gauges. */
export interface SeriesReading extends SeriesCounters {
  /** Cumulative validate counts per bucket (VALIDATE_BUCKETS, then +Inf). */
  latency: number[];
}

/**
 * A fixed-size ring of chart points (default 360 × 10 s = the last hour), sampled on an
 * unref'd timer. Rates come from the difference between two readings of cumulative counters,
 * so the hot paths pay nothing for the charts.
 */
export class SeriesRing {
  private readonly points: (SeriesPoint | undefined)[];
  private next = 0;
  private size = 0;
  private last: { at: number; r: SeriesReading } | null = null;
  private timer: unknown;
  private busy = false;
  private closed = false;

  constructor(
    private readonly clock: TimerClock,
    readonly intervalMs: number,
    capacity: number,
    private readonly read: () => Promise<SeriesReading>,
    private readonly onPoint: (p: SeriesPoint) => void,
  ) {
    this.points = new Array(capacity);
  }

  /** Takes the first reading (no point yet: rates need two) and starts the timer. */
  start(): void {
    void this.sample();
    this.arm();
  }

  /** The points in time order, oldest first. */
  list(): SeriesPoint[] {
    const out: SeriesPoint[] = [];
    const cap = this.points.length;
    for (let i = 0; i < this.size; i++) out.push(this.points[(this.next - this.size + i + cap) % cap] as SeriesPoint);
    return out;
  }

  get capacity(): number {
    return this.points.length;
  }

  /** Reads now; adds a point when there is an earlier reading. Overlapping calls are skipped. */
  async sample(): Promise<SeriesPoint | null> {
    if (this.busy || this.closed) return null;
    this.busy = true;
    try {
      const at = this.clock.now();
      const r = await this.read();
      const prev = this.last;
      this.last = { at, r };
      if (!prev || at <= prev.at) return null;
      const p = pointOf(prev, { at, r });
      this.points[this.next] = p;
      this.next = (this.next + 1) % this.points.length;
      this.size = Math.min(this.size + 1, this.points.length);
      this.onPoint(p);
      return p;
    } catch {
      // A backend that cannot answer leaves a gap; the next reading goes on from the last good one.
      return null;
    } finally {
      this.busy = false;
    }
  }

  /** Stops the timer. Safe to call twice. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.closed) return;
    this.timer = this.clock.setTimer(() => {
      void this.sample().finally(() => this.arm());
    }, this.intervalMs);
  }
}

function pointOf(a: { at: number; r: SeriesReading }, b: { at: number; r: SeriesReading }): SeriesPoint {
  const dt = b.at - a.at;
  const perMinute = (k: 'created' | 'expired' | 'evicted' | 'revoked') => round(((b.r[k] - a.r[k]) * 60_000) / dt);
  const hist = b.r.latency.map((v, i) => v - (a.r.latency[i] ?? 0));
  return {
    t: b.at,
    sessions: b.r.sessions,
    connections: b.r.connections,
    created: perMinute('created'),
    expired: perMinute('expired'),
    evicted: perMinute('evicted'),
    revoked: perMinute('revoked'),
    validations: round(((b.r.validations - a.r.validations) * 1000) / dt),
    p50: quantile(hist, 0.5),
    p99: quantile(hist, 0.99),
    backendErrors: Math.max(0, b.r.backendErrors - a.r.backendErrors),
  };
}

const round = (v: number) => Math.max(0, Math.round(v * 100) / 100);

/**
 * A quantile (ms) from per-bucket counts, interpolated linearly inside its bucket as
 * Prometheus' histogram_quantile does; the +Inf bucket answers its lower bound.
 */
export function quantile(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((s, v) => s + v, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] as number;
    if (seen + c >= rank && c > 0) {
      const lo = i === 0 ? 0 : (VALIDATE_BUCKETS[i - 1] as number);
      const hi = VALIDATE_BUCKETS[i];
      if (hi === undefined) return lo * 1000;
      return Math.round((lo + ((hi - lo) * (rank - seen)) / c) * 1e6) / 1000;
    }
    seen += c;
  }
  return null;
}
