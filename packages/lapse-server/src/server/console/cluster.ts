import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import type { Logger } from 'lapse/internal';
import type { ConnectionRow } from './connections.js';

/** How long a node waits for the others' answers. */
const ANSWER_MS = 400;
const START_MS = 3000;

type Filter = { user?: string; room?: string; limit: number };
type Request = { id: string; from: string; kind: 'list'; filter: Filter } | { id: string; from: string; kind: 'disconnect'; sid: string };
type Answer = { id: string; node: string; rows?: ConnectionRow[]; total?: number; ok?: boolean };

interface Pending {
  answers: Answer[];
  expected: number;
  done: (answers: Answer[]) => void;
  timer: NodeJS.Timeout;
  /** A disconnect is over at the first node that had the socket. */
  first: boolean;
}

/** Where the channel lives: one Redis (`url`) or the seed nodes of a Redis Cluster (`nodes`, redis:// URLs). */
export type ChannelTarget = { url: string } | { nodes: string[] };

const REDIS_OPTIONS = { maxRetriesPerRequest: 1, connectTimeout: 2000 } as const;

/**
 * A client for the channel. On a Redis Cluster, PUBLISH reaches every node over the cluster
 * bus and a subscriber listens on any one of them (ioredis picks it, and moves it after a
 * failover), so the channel works the same; the name needs no hash tag.
 */
function channelClient(target: ChannelTarget): Redis | Cluster {
  if ('url' in target) return new Redis(target.url, { ...REDIS_OPTIONS, lazyConnect: true });
  const seeds = target.nodes.map((u) => new URL(u));
  const first = seeds[0] as URL;
  const auth = {
    ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
    ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
    ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  return new Cluster(
    seeds.map((u) => ({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 6379) })),
    { lazyConnect: true, scaleReads: 'master', redisOptions: { ...REDIS_OPTIONS, ...auth } },
  );
}

/**
 * The connections table and Disconnect across service nodes on one Redis or one Redis
 * Cluster: a request on a pub/sub channel, answered by every node from its own tracker,
 * gathered for at most ANSWER_MS. The presence registry keeps only counts and socket ids,
 * not the rows.
 */
export class ConsoleCluster {
  private readonly pub: Redis | Cluster;
  private readonly sub: Redis | Cluster;
  private readonly reqChannel: string;
  private readonly resChannel: string;
  private readonly pending = new Map<string, Pending>();
  private closed = false;

  constructor(
    private readonly opts: {
      target: ChannelTarget;
      prefix: string;
      node: () => string;
      list: (filter: Filter) => { rows: ConnectionRow[]; total: number };
      disconnect: (sid: string) => boolean;
      logger: Logger;
    },
  ) {
    this.pub = channelClient(opts.target);
    this.sub = channelClient(opts.target);
    for (const c of [this.pub, this.sub]) c.on('error', (err: unknown) => opts.logger.debug?.({ err }, 'console cluster channel: redis error'));
    this.reqChannel = `${opts.prefix}console:req`;
    this.resChannel = `${opts.prefix}console:res`;
  }

  /** Connects and subscribes; rejects after START_MS at most (the caller then goes on without the others). */
  async start(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('redis did not answer in time')), START_MS);
      timer.unref();
    });
    try {
      await Promise.race([this.connectAll(), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async connectAll(): Promise<void> {
    await Promise.all([this.pub.connect(), this.sub.connect()]);
    this.sub.on('message', (channel: string, text: string) => this.onMessage(channel, text));
    await this.sub.subscribe(this.reqChannel, this.resChannel);
  }

  /** Rows of the other nodes (`others` of them are expected to answer). */
  async list(filter: Filter, others: number): Promise<Answer[]> {
    if (others <= 0) return [];
    return this.ask({ id: randomUUID(), from: this.opts.node(), kind: 'list', filter }, others, false);
  }

  /** Asks the other nodes to disconnect `sid`; true when one had it. */
  async disconnect(sid: string, others: number): Promise<boolean> {
    if (others <= 0) return false;
    const answers = await this.ask({ id: randomUUID(), from: this.opts.node(), kind: 'disconnect', sid }, others, true);
    return answers.some((a) => a.ok);
  }

  /** Unsubscribes and quits both clients. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.done(p.answers);
    }
    this.pending.clear();
    // disconnect(), not quit(): quit waits for a connection that may never come.
    for (const c of [this.sub, this.pub]) c.disconnect();
  }

  private ask(req: Request, expected: number, first: boolean): Promise<Answer[]> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.finish(req.id), ANSWER_MS);
      timer.unref();
      this.pending.set(req.id, { answers: [], expected, done: resolve, timer, first });
      this.pub.publish(this.reqChannel, JSON.stringify(req)).catch(() => this.finish(req.id));
    });
  }

  private finish(id: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.done(p.answers);
  }

  private onMessage(channel: string, text: string): void {
    let msg: Request | Answer;
    try {
      msg = JSON.parse(text) as Request | Answer;
    } catch {
      return;
    }
    if (channel === this.resChannel) {
      const a = msg as Answer;
      const p = this.pending.get(a.id);
      if (!p) return;
      p.answers.push(a);
      if (p.answers.length >= p.expected || (p.first && a.ok)) this.finish(a.id);
      return;
    }
    const req = msg as Request;
    const node = this.opts.node();
    if (req.from === node || this.closed) return;
    let answer: Answer;
    try {
      answer = req.kind === 'list' ? { id: req.id, node, ...this.opts.list(req.filter) } : { id: req.id, node, ok: this.opts.disconnect(req.sid) };
    } catch (err) {
      this.opts.logger.warn({ err }, 'console cluster channel: could not answer');
      return;
    }
    this.pub.publish(this.resChannel, JSON.stringify(answer)).catch(() => {});
  }
}
