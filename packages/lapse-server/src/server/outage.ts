import type { Clock } from 'lapse/internal';
import type { Logger } from 'lapse/internal';

/** Routes whose answer below 500 shows that the backend served them. */
const SERVED_BY_BACKEND = /^\/v1\/(sessions|users)\b/;

/**
 * One log line when the backend becomes unavailable and one when it serves again (with how many
 * requests answered 503 meanwhile and for how long), instead of a line with a stack per failed
 * request: an outage of a few seconds under load would write hundreds. Each 503 is still counted,
 * in lapse_http_requests_total{status="503"} and lapse_backend_errors_total.
 */
export class OutageLog {
  private downSince: number | null = null;
  private failed = 0;

  constructor(
    private readonly logger: Logger,
    private readonly clock: Clock,
  ) {}

  /** A request answered 503 because the backend failed. */
  failedRequest(code: string, message: string): void {
    if (this.downSince === null) {
      this.downSince = this.clock.now();
      this.failed = 0;
      this.logger.warn({ code, err: message }, 'backend unavailable: requests answer 503 until it serves again');
    }
    this.failed++;
  }

  /** Every answered request: one the backend served ends an outage. */
  answered(route: string, status: number): void {
    if (this.downSince === null || status >= 500) return;
    if (!SERVED_BY_BACKEND.test(route) && !(route === '/health' && status === 200)) return;
    this.logger.info({ failedRequests: this.failed, downMs: this.clock.now() - this.downSince }, 'backend available again');
    this.downSince = null;
    this.failed = 0;
  }

  /** Whether an outage is in progress (for /health details and tests). */
  get down(): boolean {
    return this.downSince !== null;
  }
}
