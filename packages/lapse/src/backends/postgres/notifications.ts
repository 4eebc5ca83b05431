import type { Client } from 'pg';
import type { Logger } from '../../util/logger.js';

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2_000;

/**
 * LISTEN on one dedicated connection (a pooled one would be handed to others), reconnecting
 * with backoff for as long as it is open. Notifications sent while it is down are lost: lock
 * waiters keep their own backstop timers, so a lost one delays a waiter, never strands it.
 */
export class UnlockListener {
  private client: Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private down = false;
  private closed = false;

  constructor(
    private readonly connect: () => Client,
    private readonly channel: string,
    private readonly onId: (id: string) => void,
    private readonly log: () => Logger,
  ) {}

  start(): void {
    if (this.closed || this.client || this.timer) return;
    const client = this.connect();
    this.client = client;
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    client.on('notification', (m) => {
      if (m.channel === this.channel && m.payload) this.onId(m.payload);
    });
    client
      .connect()
      .then(() => client.query(`LISTEN ${this.channel}`))
      .then(() => {
        this.attempt = 0;
        if (this.down) this.log().info({ backend: 'postgres' }, 'postgres unlock listener is back');
        this.down = false;
      })
      .catch((err: unknown) => this.lost(client, err));
  }

  /** Stops listening and reconnecting. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => {});
  }

  private lost(client: Client, err?: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => {});
    if (this.closed) return;
    if (!this.down) {
      this.down = true;
      const why = err instanceof Error ? err.message : 'connection ended';
      this.log().warn({ backend: 'postgres', err: why }, 'postgres unlock listener lost its connection; reconnecting');
    }
    const wait = Math.min(RETRY_MIN_MS * 2 ** this.attempt++, RETRY_MAX_MS);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.start();
    }, wait);
    this.timer.unref();
  }
}
