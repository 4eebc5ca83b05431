import { hostname } from 'node:os';
import { type TimerClock, timerClock } from 'lapse/internal';
import { type Duration, parsePositiveDuration } from 'lapse/internal';
import { LapseError } from 'lapse/internal';
import { defaultLogger, type Logger } from 'lapse/internal';
import type { StoreEvent, StoreEventName } from 'lapse/internal';
import type { StoreStats } from 'lapse';
import type { LapseContext } from '../context.js';
import { Directory } from './directory.js';
import { ConsoleFeed } from './feed.js';
import type { ConsoleCluster } from './cluster.js';
import { type ConnectionRow, listConnections, MAX_ROWS } from './connections.js';
import { JobRuns } from './job-runs.js';
import { parseBackendUrl } from '../backend.js';
import { type SeriesReading, SeriesRing } from './series.js';

/** createServer's `console` option (code only). */
export interface ConsoleOptions {
  /** Time between two chart points; default '10s'. */
  sampleInterval?: Duration;
  /** How far back the charts reach; default '1h' (history / sampleInterval points, at most 10 000). */
  history?: Duration;
}

/** The store's figures the console shows (a subset of StoreStats, so the two cannot drift apart). */
const STORE_FIGURES = [
  'sessions',
  'users',
  'locked',
  'created',
  'expired',
  'evicted',
  'revoked',
  'rotated',
  'validations',
  'backendErrors',
] as const satisfies readonly (keyof StoreStats)[];
type StoreFigures = Pick<StoreStats, (typeof STORE_FIGURES)[number]>;

/** The headline figures, pushed as `figures`. */
export interface Figures extends StoreFigures {
  at: number;
  node: string;
  /** Live service nodes (1 without cluster presence). */
  nodes: number;
  connections: number;
  connectedUsers: number;
  rooms: number;
  /** Whether the backend answered this reading. */
  backend: 'ok' | 'unavailable';
}

/** StoreFigures from a stats() answer, or all zero when the backend did not answer. */
function storeFigures(s: StoreStats | null): StoreFigures {
  const out = {} as Record<(typeof STORE_FIGURES)[number], number>;
  for (const k of STORE_FIGURES) out[k] = s ? s[k] : 0;
  return out;
}

const SESSION_EVENTS = ['created', 'expired', 'evicted', 'revoked', 'rotated'] as const satisfies readonly StoreEventName[];
/** Figures go out at most this often after changes, and at least every FIGURES_EVERY_MS (changes on other nodes). */
const FIGURES_AFTER_MS = 150;
const FIGURES_EVERY_MS = 2000;
const JOBS_POLL_MS = 500;
const CLUSTER_MODULE: string = './cluster.js';

/**
 * The live console behind the admin page: the push channel, the chart series, the prefix
 * search and the job history. Everything runs on unref'd timers cleared by close().
 */
export class ConsoleService {
  readonly feed: ConsoleFeed;
  readonly series: SeriesRing;
  readonly directory: Directory;
  readonly jobs: JobRuns;
  private readonly clock: TimerClock;
  private readonly unhook: (() => void)[] = [];
  private figuresTimer: unknown;
  private tickTimer: unknown;
  private lastFiguresAt = 0;
  private nodeName = `${hostname()}-${process.pid}`;
  private closed = false;
  private cluster: ConsoleCluster | null = null;

  constructor(
    private readonly ctx: LapseContext,
    opts: ConsoleOptions = {},
    private readonly logger: Logger = defaultLogger(),
  ) {
    this.clock = timerClock(ctx.clock);
    const every = parsePositiveDuration(opts.sampleInterval ?? '10s', 'console.sampleInterval');
    const history = parsePositiveDuration(opts.history ?? '1h', 'console.history');
    const capacity = Math.ceil(history / every);
    if (capacity > 10_000) throw new LapseError('LAPSE_INVALID_OPTION', 'console.history / console.sampleInterval is at most 10 000 points');
    this.feed = new ConsoleFeed(this.clock, (on) => this.watchTracker(on));
    this.series = new SeriesRing(this.clock, every, capacity, () => this.reading(), (p) => this.feed.now('point', p));
    this.directory = new Directory(ctx.store, () => ctx.clock.now());
    this.jobs = new JobRuns(ctx.store.scheduler, () => this.nodeName);
  }

  /** This node's name: the presence registry's node id on a cluster, else host and pid. */
  get node(): string {
    return this.nodeName;
  }

  /** Follows the store and the tracker, starts the series and the job watch; on Redis, joins the other nodes' consoles. */
  async start(): Promise<void> {
    await this.figures();
    await this.joinCluster();
    const { store } = this.ctx;
    for (const event of SESSION_EVENTS) {
      const listener = (e: StoreEvent) => {
        this.feed.publish('sessions', { event, id: e.id, userId: e.userId, at: e.at });
        this.figuresSoon();
      };
      store.on(event, listener);
      this.unhook.push(() => store.off(event, listener));
    }
    this.series.start();
    this.tick();
  }

  /**
   * The tracker's connect and disconnect events, followed only while a console is open: each
   * one listened to costs the tracker a snapshot of the connection.
   */
  private readonly onConnection = () => {
    this.feed.publish('connections', { at: this.ctx.clock.now() });
    this.figuresSoon();
  };

  private watchTracker(on: boolean): void {
    const tracker = this.ctx.live?.tracker;
    if (!tracker) return;
    tracker.off('connected', this.onConnection).off('disconnected', this.onConnection);
    if (on && !this.closed) tracker.on('connected', this.onConnection).on('disconnected', this.onConnection);
  }

  /** The figures now (cluster-wide connection counts with presence on Redis). */
  async figures(): Promise<Figures> {
    const { store, connections } = this.ctx;
    const at = this.ctx.clock.now();
    const c = connections ? await Promise.resolve(connections.stats()).catch(() => null) : null;
    if (c?.node?.nodeId) this.nodeName = c.node.nodeId;
    const base = {
      at,
      node: this.nodeName,
      nodes: c?.nodes ?? 1,
      connections: c?.totalSessions ?? 0,
      connectedUsers: c?.uniqueUsers ?? 0,
      rooms: c?.activeRooms ?? 0,
    };
    try {
      return { ...base, ...storeFigures(await store.stats()), backend: 'ok' };
    } catch {
      return { ...base, ...storeFigures(null), backend: 'unavailable' };
    }
  }

  /** Live connections, of every node on Redis with presence (each answers for its own within 400 ms), else of this one. */
  async connections(filter: { user?: string; room?: string; limit: number }): Promise<{
    node: string;
    nodes: number;
    answered: number;
    clusterTotal: number;
    total: number;
    connections: ConnectionRow[];
  }> {
    const figures = await this.figures();
    const tracker = this.ctx.live?.tracker;
    const local = tracker ? listConnections(tracker, this.nodeName, filter) : { rows: [], total: 0 };
    const answers = this.cluster ? await this.cluster.list(filter, figures.nodes - 1) : [];
    let rows = local.rows;
    let total = local.total;
    for (const a of answers) {
      rows = rows.concat(a.rows ?? []);
      total += a.total ?? 0;
    }
    if (answers.length > 0) rows = rows.sort((x, y) => x.connectedAt - y.connectedAt).slice(0, Math.min(filter.limit, MAX_ROWS));
    return { node: this.nodeName, nodes: figures.nodes, answered: 1 + answers.length, clusterTotal: figures.connections, total, connections: rows };
  }

  /** Disconnects a socket on this node, else (on Redis) on whichever node has it. False when none had it. */
  async disconnect(sid: string): Promise<boolean> {
    const socket = this.ctx.live?.io.of('/').sockets.get(sid);
    if (socket) {
      socket.disconnect(true);
      return true;
    }
    if (!this.cluster) return false;
    return this.cluster.disconnect(sid, (await this.figures()).nodes - 1);
  }

  private async joinCluster(): Promise<void> {
    const { config, live } = this.ctx;
    const logger = this.logger;
    const target = parseBackendUrl(config.backend);
    if ((target.kind !== 'redis' && target.kind !== 'redis-cluster') || !config.socketPresence || !live || this.closed) return;
    // Loaded only on a Redis backend, like the backend itself.
    const { ConsoleCluster: Cluster } = (await import(CLUSTER_MODULE)) as typeof import('./cluster.js');
    const cluster = new Cluster({
      target: target.kind === 'redis' ? { url: target.url } : { nodes: target.nodes },
      prefix: config.redisPrefix ?? 'lapse:',
      node: () => this.nodeName,
      list: (filter) => listConnections(live.tracker, this.nodeName, filter),
      disconnect: (sid) => {
        const socket = live.io.of('/').sockets.get(sid);
        socket?.disconnect(true);
        return socket !== undefined;
      },
      logger,
    });
    try {
      await cluster.start();
      this.cluster = cluster;
    } catch (err) {
      logger.warn({ err }, 'console: could not join the other nodes over Redis; the connections table shows this node only');
      await cluster.close();
    }
  }

  /** Stops everything and ends the streams. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.cluster?.close();
    for (const off of this.unhook.splice(0)) off();
    this.watchTracker(false);
    for (const t of [this.figuresTimer, this.tickTimer]) if (t !== undefined) this.clock.clearTimer(t);
    this.figuresTimer = undefined;
    this.tickTimer = undefined;
    this.series.close();
    this.feed.close();
  }

  private figuresSoon(): void {
    if (this.closed || this.feed.size === 0 || this.figuresTimer !== undefined) return;
    this.figuresTimer = this.clock.setTimer(() => {
      this.figuresTimer = undefined;
      void this.pushFigures();
    }, FIGURES_AFTER_MS);
  }

  private async pushFigures(): Promise<void> {
    this.lastFiguresAt = this.ctx.clock.now();
    const f = await this.figures();
    this.feed.publish('figures', f);
  }

  /** Every JOBS_POLL_MS: job runs noticed, and the figures refreshed now and then. */
  private tick(): void {
    if (this.closed) return;
    if (this.feed.size > 0) {
      const { jobs, changed } = this.jobs.poll();
      if (changed) this.feed.publish('jobs', { node: this.nodeName, jobs });
      if (this.ctx.clock.now() - this.lastFiguresAt >= FIGURES_EVERY_MS) void this.pushFigures();
    }
    this.tickTimer = this.clock.setTimer(() => this.tick(), JOBS_POLL_MS);
  }

  private async reading(): Promise<SeriesReading> {
    const { store, connections, metrics } = this.ctx;
    const s = await store.stats();
    const c = connections ? await Promise.resolve(connections.stats()).catch(() => null) : null;
    return {
      sessions: s.sessions,
      connections: c?.totalSessions ?? 0,
      created: s.created,
      expired: s.expired,
      evicted: s.evicted,
      revoked: s.revoked,
      validations: s.validations,
      backendErrors: s.backendErrors,
      latency: metrics.validateCounts(),
    };
  }
}
