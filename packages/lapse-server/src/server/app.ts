import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { DestinationStream } from 'pino';
import { type Clock, systemClock } from 'lapse/internal';
import { createStore, type SessionStore } from 'lapse/internal';
import { installAuth } from './auth.js';
import { installJsonBody } from './body.js';
import { openBackend } from './backend.js';
import { closeIdleConnectionsOnClose } from './idle-connections.js';
import { resolveConfig, type ServerConfigInput, storeOptionsOf } from './config.js';
import type { ConnectionsProvider, LapseContext, LapseServer } from './context.js';
import { installCors } from './cors.js';
import { installErrorHandlers } from './errors.js';
import { KeyRing } from './keys.js';
import { createLogger, installAccessLog } from './log.js';
import { ServerMetrics } from './metrics.js';
import { installSecurityHeaders } from './security.js';
import { OpenApiCollector } from './openapi.js';
import { OutageLog } from './outage.js';
import { FailureLimiter } from './rate-limit.js';
import { adminSessionRoutes } from './routes/admin-sessions.js';
import { healthRoutes } from './routes/health.js';
import { jobRoutes } from './routes/jobs.js';
import { lockRoutes } from './routes/locks.js';
import { metricsRoutes } from './routes/metrics.js';
import { openApiRoutes } from './routes/openapi.js';
import { sessionRoutes } from './routes/sessions.js';
import { userRoutes } from './routes/users.js';
import { statsRoutes } from './routes/stats.js';
import { webRoutes } from './routes/web.js';
import { keyRoutes } from './routes/keys.js';
import { consoleRoutes } from './routes/console.js';
import { consoleAssetRoutes } from './routes/console-assets.js';
import { type ConsoleOptions, ConsoleService } from './console/console.js';
import { type LiveConnectionOptions, mountServiceSockets } from './live.js';

/** createServer's argument: the configuration plus what only code can pass. */
export interface CreateServerOptions extends ServerConfigInput {
  /** Serve this store instead of opening `backend`; the caller keeps it and closes it. */
  store?: SessionStore;
  /** Where the JSON log lines go (default: stderr). */
  logStream?: DestinationStream;
  clock?: Clock;
  /** Live-connection stats for /health/connections (the Socket.IO tracker); settable later as `app.lapse.connections`. */
  connections?: ConnectionsProvider;
  /**
   * Socket.IO at /socket.io/ with the connection tracker (on by default; false turns it
   * off). The settings come from the `socket*` configuration; what is given here (tracker
   * options and `serverOptions`) goes over them. /health/connections reports it.
   */
  liveConnections?: boolean | LiveConnectionOptions;
  /** The admin console's chart settings (sample interval, history); the console itself is always on. */
  console?: ConsoleOptions;
  /** Runs after the routes are registered and before the server is ready: mount more on `app.server` here. */
  onReady?: (app: LapseServer) => void | Promise<void>;
}

const EXTRA = ['store', 'logStream', 'clock', 'connections', 'onReady', 'liveConnections', 'console'] as const;

/**
 * The Lapse service as a Fastify instance (not yet listening). Opens the backend the config
 * names unless a store is given, makes an admin key on first start, registers every route.
 * @example
 * const app = await createServer({ backend: 'sqlite:./data/lapse.db', dataDir: './data' });
 * await app.listen({ host: app.lapse.config.host, port: app.lapse.config.port });
 * if (app.lapse.generatedAdminKey) console.log('admin key:', app.lapse.generatedAdminKey);
 */
export async function createServer(options: CreateServerOptions = {}): Promise<LapseServer> {
  const input: Record<string, unknown> = { ...options };
  for (const k of EXTRA) delete input[k];
  const config = resolveConfig(input as ServerConfigInput);
  const clock = options.clock ?? systemClock;
  const logger = createLogger(config.logLevel, options.logStream);
  const keys = new KeyRing(config.dataDir, { adminKey: config.adminKey });
  // Before anything is opened: a key file we cannot write stops the start cleanly.
  const generatedAdminKey = keys.ensureAdmin();

  let store = options.store;
  const ownStore = store === undefined;
  if (!store) {
    const backend = await openBackend(config.backend, { redisPrefix: config.redisPrefix, clock, logger });
    try {
      store = createStore({ backend, ...storeOptionsOf(config), clock, logger: logger.child({ component: 'store' }) });
    } catch (err) {
      await backend.close();
      throw err;
    }
  }

  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: config.bodyLimit,
    trustProxy: config.trustProxy,
    // Request lines are written once, redacted, by the access-log hook instead.
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request (a measurable share of a validate): the few lines written
    // in a request carry its id explicitly.
    childLoggerFactory: (logger) => logger,
    // Strict bodies: a wrong type is a 400, never quietly converted; unknown fields are refused.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    forceCloseConnections: 'idle',
    // Ids chosen with the Map-like set() may be 256 characters, more once percent-encoded.
    routerOptions: { maxParamLength: 1024 },
    // A slow client cannot hold a request open for long (a lock wait is at most 30 s).
    requestTimeout: 60_000,
  }) as unknown as FastifyInstance;

  const metrics = new ServerMetrics(store);
  const limiter = config.rateLimit ? new FailureLimiter(config.rateLimit, clock) : null;
  const ctx: LapseContext = {
    config,
    store,
    keys,
    metrics,
    limiter,
    clock,
    generatedAdminKey,
    connections: options.connections ?? null,
    live: null,
  };
  app.decorate('lapse', ctx);

  const openapi = new OpenApiCollector();
  openapi.attach(app);
  const outage = new OutageLog(logger.child({ component: 'backend' }), clock);
  installErrorHandlers(app, outage);
  installJsonBody(app);
  await installSecurityHeaders(app);
  installCors(app, config.corsOrigins);
  installAuth(app, keys);
  installAccessLog(app, { accessLog: config.accessLog, metrics, outage });

  await app.register(sessionRoutes(ctx));
  await app.register(adminSessionRoutes(ctx));
  await app.register(lockRoutes(ctx));
  await app.register(userRoutes(ctx));
  await app.register(jobRoutes(ctx));
  await app.register(statsRoutes(ctx));
  await app.register(healthRoutes(ctx));
  await app.register(metricsRoutes(ctx));
  await app.register(openApiRoutes(openapi));
  await app.register(webRoutes());
  await app.register(keyRoutes(ctx));
  await app.register(consoleAssetRoutes());

  closeIdleConnectionsOnClose(app);
  app.addHook('onClose', async () => {
    metrics.close();
    if (ownStore) await store.close();
  });
  const server = app as LapseServer;
  if (options.liveConnections !== false && !options.connections) {
    const extra = typeof options.liveConnections === 'object' ? options.liveConnections : {};
    const sockets = await mountServiceSockets({
      server: app.server, store, config, limiter, clock, logger: logger.child({ component: 'socket.io' }), extra,
    });
    ctx.connections = sockets.connections;
    ctx.live = sockets.live;
    sockets.live.tracker.registerMetrics(metrics.registry);
    // preClose, not onClose: the HTTP server waits for upgraded sockets before it closes.
    app.addHook('preClose', async () => sockets.close());
  }
  // The live console, after the sockets: it follows the tracker. Its streams end before the server closes.
  const service = new ConsoleService(ctx, options.console, logger.child({ component: 'console' }));
  await app.register(consoleRoutes(ctx, service));
  app.addHook('preClose', async () => service.close());
  app.addHook('onReady', async () => service.start());
  if (options.onReady) await options.onReady(server);
  return server;
}
