import type { ServerResponse } from 'node:http';
import type { TimerClock } from 'lapse/internal';

/** How long changes of one topic are gathered before they go out (well inside the 1 s promise). */
const COALESCE_MS = 100;
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;
/** Streams open at once; more are refused (each holds a socket). */
export const MAX_STREAMS = 32;

/**
 * The console's push channel: server-sent events written to fetch()-read streams (the
 * browser sends the admin key in the Authorization header, which EventSource cannot).
 * Each topic keeps only its latest payload while changes are gathered, so a burst of a
 * thousand connects is one message.
 */
export class ConsoleFeed {
  private readonly streams = new Set<ServerResponse>();
  private readonly pending = new Map<string, unknown>();
  private flushTimer: unknown;
  private keepAlive: unknown;
  private closed = false;

  /** `watch(true)` when the first stream opens, `watch(false)` when the last one closes. */
  constructor(
    private readonly clock: TimerClock,
    private readonly watch: (on: boolean) => void = () => {},
  ) {}

  get size(): number {
    return this.streams.size;
  }

  /** Whether another stream may open. */
  full(): boolean {
    return this.streams.size >= MAX_STREAMS;
  }

  /** Starts writing to `res` (headers already sent); `hello` goes first, to it alone. */
  add(res: ServerResponse, hello: Record<string, unknown>): void {
    if (this.closed) {
      res.end();
      return;
    }
    this.streams.add(res);
    if (this.streams.size === 1) this.watch(true);
    res.on('close', () => {
      if (this.streams.delete(res) && this.streams.size === 0 && !this.closed) this.watch(false);
    });
    for (const [topic, data] of Object.entries(hello)) res.write(frame(topic, data));
    if (this.keepAlive === undefined) this.armKeepAlive();
  }

  /** Sends `data` under `topic` within COALESCE_MS; a later call for the same topic replaces it. */
  publish(topic: string, data: unknown): void {
    if (this.closed || this.streams.size === 0) return;
    this.pending.set(topic, data);
    if (this.flushTimer === undefined) this.flushTimer = this.clock.setTimer(() => this.flush(), COALESCE_MS);
  }

  /** Sends at once, not coalesced (chart points: each one counts). */
  now(topic: string, data: unknown): void {
    if (this.closed || this.streams.size === 0) return;
    this.write(frame(topic, data));
  }

  /** Ends every stream and clears the timers. Safe to call twice. */
  close(): void {
    this.closed = true;
    if (this.flushTimer !== undefined) this.clock.clearTimer(this.flushTimer);
    if (this.keepAlive !== undefined) this.clock.clearTimer(this.keepAlive);
    this.flushTimer = undefined;
    this.keepAlive = undefined;
    this.pending.clear();
    const had = this.streams.size > 0;
    for (const res of this.streams) res.end();
    this.streams.clear();
    if (had) this.watch(false);
  }

  private flush(): void {
    this.flushTimer = undefined;
    let out = '';
    for (const [topic, data] of this.pending) out += frame(topic, data);
    this.pending.clear();
    if (out) this.write(out);
  }

  private write(text: string): void {
    for (const res of this.streams) {
      // A client that does not read is dropped rather than buffered without bound.
      if (res.writableLength > 1_000_000) res.destroy();
      else res.write(text);
    }
  }

  private armKeepAlive(): void {
    this.keepAlive = this.clock.setTimer(() => {
      this.keepAlive = undefined;
      if (this.closed || this.streams.size === 0) return;
      this.write(': keep-alive\n\n');
      this.armKeepAlive();
    }, KEEPALIVE_MS);
  }
}

function frame(topic: string, data: unknown): string {
  return `event: ${topic}\ndata: ${JSON.stringify(data)}\n\n`;
}
