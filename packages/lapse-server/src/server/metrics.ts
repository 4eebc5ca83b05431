import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { type HistogramSeries, HotCounter, HotHistogram } from './hot-metrics.js';
import type { SessionStore, StoreEventName } from 'lapse/internal';

/** Upper bounds (seconds) of the validate-duration buckets. */
export const VALIDATE_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5];

const ENDINGS = ['created', 'expired', 'evicted', 'revoked', 'rotated'] as const satisfies readonly StoreEventName[];

/**
 * The service's Prometheus metrics, on a registry of its own (never prom-client's global
 * one, so two servers in one process do not collide). Gauges are read from the store when
 * scraped; event counters follow the store's events.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  private readonly sessions: Gauge;
  private readonly users: Gauge;
  private readonly locked: Gauge;
  private readonly backendUp: Gauge;
  private readonly backendErrors: Counter;
  private snapshots: { failures: Counter; lastSuccess: Gauge } | undefined;
  private readonly jobRuns: Counter<'job'>;
  private readonly jobFailures: Counter<'job'>;
  private readonly validOutcome: HistogramSeries;
  private readonly invalidOutcome: HistogramSeries;
  private readonly requests: HotCounter;
  private readonly listeners: [StoreEventName, () => void][] = [];

  constructor(private readonly store: SessionStore) {
    const registers = [this.registry];
    // process_* and nodejs_* (CPU, memory, event-loop lag, GC, handles): read when scraped.
    collectDefaultMetrics({ register: this.registry });
    this.sessions = new Gauge({ name: 'lapse_sessions', help: 'Stored sessions (expired ones not yet swept included)', registers });
    this.users = new Gauge({ name: 'lapse_users', help: 'Distinct users with a stored session', registers });
    this.locked = new Gauge({ name: 'lapse_sessions_locked', help: 'Sessions with a lease in force', registers });
    this.backendUp = new Gauge({ name: 'lapse_backend_up', help: '1 when the backend answered the last scrape and keeps writes', registers });
    this.backendErrors = new Counter({ name: 'lapse_backend_errors_total', help: 'Backend failures seen by the store', registers });
    this.jobRuns = new Counter({ name: 'lapse_job_runs_total', help: 'Runs of each scheduled job', labelNames: ['job'], registers });
    this.jobFailures = new Counter({ name: 'lapse_job_failures_total', help: 'Failed runs of each scheduled job', labelNames: ['job'], registers });
    // The two metrics written on every request are plain numbers until scraped (hot-metrics.ts).
    const validateSeconds = new HotHistogram(
      this.registry,
      'lapse_validate_duration_seconds',
      'Time to validate a token',
      'result',
      VALIDATE_BUCKETS,
    );
    this.validOutcome = validateSeconds.labels('valid');
    this.invalidOutcome = validateSeconds.labels('invalid');
    this.requests = new HotCounter(this.registry, 'lapse_http_requests_total', 'HTTP requests by route template and status');
    for (const event of ENDINGS) {
      const counter = new Counter({ name: `lapse_sessions_${event}_total`, help: `Sessions ${event}`, registers });
      const listener = () => counter.inc();
      store.on(event, listener);
      this.listeners.push([event, listener]);
    }
  }

  /** Records one validation and its duration. */
  observeValidate(seconds: number, valid: boolean): void {
    (valid ? this.validOutcome : this.invalidOutcome).observe(seconds);
  }

  /** Validations so far per bucket of VALIDATE_BUCKETS (+Inf last), valid and invalid together: the console's latency series. */
  validateCounts(): number[] {
    const out: number[] = [];
    for (let i = 0; i <= VALIDATE_BUCKETS.length; i++) out.push((this.validOutcome.counts[i] as number) + (this.invalidOutcome.counts[i] as number));
    return out;
  }

  /** Counts one answered request (route is the template, so the label set stays small). */
  observeRequest(method: string, route: string, status: number): void {
    this.requests.inc(`${method} ${status} ${route}`, () => ({ method, route, status: String(status) }));
  }

  /** Reads the store's gauges and job counts, then renders the Prometheus text. */
  async render(): Promise<string> {
    try {
      const s = await this.store.stats();
      this.sessions.set(s.sessions);
      this.users.set(s.users);
      this.locked.set(s.locked);
      // Up means able to keep writes too (a backend's own health report, or a probe after a failure).
      this.backendUp.set((await this.store.writeHealth()).writable ? 1 : 0);
      setCounter(this.backendErrors, s.backendErrors);
      if (s.snapshot) this.observeSnapshots(s.snapshot);
    } catch {
      this.backendUp.set(0);
    }
    this.jobRuns.reset();
    this.jobFailures.reset();
    for (const job of this.store.scheduler.list()) {
      this.jobRuns.inc({ job: job.id }, job.runs);
      this.jobFailures.inc({ job: job.id }, job.failures);
    }
    return this.registry.metrics();
  }

  /** Memory snapshots' metrics, registered on the first scrape that reports them (only memory backends with snapshots do). */
  private observeSnapshots(s: { failures: number; lastSuccessAt: number | null }): void {
    const registers = [this.registry];
    this.snapshots ??= {
      failures: new Counter({ name: 'lapse_snapshot_failures_total', help: 'Memory snapshot writes that failed', registers }),
      lastSuccess: new Gauge({
        name: 'lapse_snapshot_last_success_timestamp_seconds',
        help: 'When a memory snapshot was last written (0: not yet)',
        registers,
      }),
    };
    setCounter(this.snapshots.failures, s.failures);
    this.snapshots.lastSuccess.set(s.lastSuccessAt === null ? 0 : s.lastSuccessAt / 1000);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Stops following the store. Safe to call twice. */
  close(): void {
    for (const [event, listener] of this.listeners.splice(0)) this.store.off(event, listener);
  }
}

/** Counters read from a source that counts by itself (the store, the scheduler). */
function setCounter(c: Counter, value: number): void {
  c.reset();
  c.inc(value);
}
