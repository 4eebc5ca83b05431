import type { Cluster, Redis } from 'ioredis';
import type { EndReason, Ended } from '../../core/session.js';
import type { RedisConnection } from './connection.js';

const REASONS: ReadonlySet<string> = new Set<EndReason>(['idle', 'absolute', 'evicted', 'revoked', 'rotated']);

/**
 * Session-ended notices between processes over Redis pub/sub, on the channel
 * `<prefix>ended`. Publishing goes through the store's bounded connection (it fails fast
 * and is logged); listening uses a subscriber connection of its own, made on the first
 * listener and re-subscribed by ioredis after a reconnect. Pub/sub is at most once: a
 * process that is disconnected when a notice goes out misses it, and its sockets are then
 * cut by the tracker's own checks (see docs/socket.io.md, "Sessions ending on other nodes").
 */
export class EndedChannel {
  readonly channel: string;
  private readonly listeners = new Set<(ended: Ended[]) => void>();
  private subscriber: Redis | Cluster | undefined;
  private closed = false;

  constructor(
    private readonly conn: RedisConnection,
    prefix: string,
  ) {
    this.channel = `${prefix}ended`;
  }

  /** Sends one message for the whole batch: `[[id, reason, userId], …]`. */
  publish(ended: Ended[]): void {
    if (this.closed || ended.length === 0) return;
    const message = JSON.stringify(ended.map((e) => [e.id, e.reason, e.userId]));
    this.conn.run('publish', () => this.conn.client.publish(this.channel, message)).catch((err: unknown) => {
      this.conn.log().warn({ backend: 'redis', err, sessions: ended.length }, 'could not tell other nodes that sessions ended');
    });
  }

  /** Calls `listener` for every notice from any process, this one included. */
  listen(listener: (ended: Ended[]) => void): () => void {
    this.listeners.add(listener);
    if (!this.subscriber && !this.closed) this.subscribe();
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Drops the subscriber connection. Idempotent. */
  close(): void {
    this.closed = true;
    this.listeners.clear();
    const sub = this.subscriber;
    this.subscriber = undefined;
    sub?.disconnect();
  }

  private subscribe(): void {
    const sub = this.conn.subscriber();
    this.subscriber = sub;
    sub.on('error', (err: Error) => this.conn.log().debug({ backend: 'redis', err: err.message }, 'redis ended-subscriber error'));
    sub.on('message', (ch: string, message: string) => {
      if (ch !== this.channel) return;
      const ended = decode(message);
      if (ended === null) {
        this.conn.log().warn({ backend: 'redis', channel: ch }, 'ignored a malformed session-ended notice');
        return;
      }
      for (const listener of [...this.listeners]) {
        try {
          listener(ended);
        } catch (err) {
          this.conn.log().error({ backend: 'redis', err }, 'onEnded listener threw');
        }
      }
    });
    sub.subscribe(this.channel).catch((err: unknown) => {
      if (!this.closed) this.conn.log().warn({ backend: 'redis', err }, 'redis session-ended subscription failed');
    });
  }
}

function decode(message: string): Ended[] | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return null;
  }
  if (!Array.isArray(parsed)) return null;
  const out: Ended[] = [];
  for (const item of parsed) {
    if (!Array.isArray(item)) return null;
    const [id, reason, userId] = item as unknown[];
    if (typeof id !== 'string' || typeof reason !== 'string' || !REASONS.has(reason)) return null;
    out.push({ id, reason: reason as EndReason, userId: typeof userId === 'string' ? userId : null });
  }
  return out;
}
