/**
 * express-session with LapseStore vs the store users would pick instead, on the same backend
 * and the same routes, in one run: MemoryStore (memory), better-sqlite3-session-store
 * (SQLite), connect-redis (a real redis-server), connect-pg-simple (a real PostgreSQL, fsync on,
 * pools of the same size). Routes: a read-only request (express-session
 * touches the session), a write request (one key changes, the session is saved), both spread
 * over 64 sessions, and a login
 * (regenerate: a new session). Each server runs in its own process; autocannon drives it from
 * here; the server reports its own CPU time, so CPU per request is the server's alone.
 * Then lost updates: 50 concurrent requests, each setting a different key of one session.
 * Run: flock /tmp/lapse-bench.lock npm run bench -- express-session
 * The PostgreSQL pair alone: BENCH_STORES=lapse-postgres,connect-pg-simple BENCH_NAME=express-session-postgres
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { childArg, cpu, cpuRoute, listenLocal, login, serveOrDrive, startChild, stopChildren } from './child-server.js';
import { fmt, progress, writeResults } from './lib.js';
import { withRange } from './stats.js';
import { type PeerName, peerStore } from './peer-stores.js';

// BENCH_QUICK=1: one short slice, to check the bench runs (figures not meaningful).
const QUICK = process.env.BENCH_QUICK === '1';
const SLICE_S = QUICK ? 1 : 2;
// BENCH_SLICES=n: n slices per store and route (default 5).
const SLICES = QUICK ? 1 : Number(process.env.BENCH_SLICES ?? 5);
const WARMUP_S = QUICK ? 1 : 2;
const CONNECTIONS = 16;
const WRITERS = 50;
const LOST_ROUNDS = 5;
/** Read and write requests go to this many sessions in turn (many users), not all to one. */
const POOL = 64;

const ALL_STORES = [
  'lapse-memory',
  'memorystore',
  'lapse-sqlite',
  'better-sqlite3-session-store',
  'lapse-redis',
  'connect-redis',
  'lapse-postgres',
  'connect-pg-simple',
  'floor',
] as const;
type StoreName = (typeof ALL_STORES)[number];
// BENCH_STORES=a,b: only these. BENCH_SQLITE_SYNC=full: Lapse SQLite at synchronous FULL with
// group commit (better-sqlite3-session-store runs FULL already); results go to express-session-full.md.
const ONLY = process.env.BENCH_STORES?.split(',');
// The floor (express-session's own cost) always runs: the added-cost note reads it.
const STORES = ALL_STORES.filter((s) => !ONLY || ONLY.includes(s) || s === 'floor');
const SQLITE_FULL = process.env.BENCH_SQLITE_SYNC === 'full';
const PEER: Partial<Record<StoreName, StoreName>> = {
  'lapse-memory': 'memorystore',
  'lapse-sqlite': 'better-sqlite3-session-store',
  'lapse-redis': 'connect-redis',
  'lapse-postgres': 'connect-pg-simple',
};
/** The target over the peer, per Lapse store: issue #14 (1.2x) for most, issue #20 (1.3x) on PostgreSQL. */
const TARGET: Partial<Record<StoreName, number>> = { 'lapse-memory': 1.2, 'lapse-sqlite': 1.2, 'lapse-redis': 1.2, 'lapse-postgres': 1.3 };
/** Connections in each PostgreSQL pool, the same on both sides (bench/postgres.ts uses 10 too). */
const PG_POOL = 10;
// BENCH_NAME=x: write the results to bench/results/x.md/.json (a run of some pairs next to a full run).
const NAME = process.env.BENCH_NAME ?? (SQLITE_FULL ? 'express-session-full' : 'express-session');
const NEEDS_REDIS = STORES.some((s) => s === 'lapse-redis' || s === 'connect-redis');
const NEEDS_PG = STORES.some((s) => s === 'lapse-postgres' || s === 'connect-pg-simple');
const ALL_ROUTES = ['read', 'write', 'login'] as const;
type Route = (typeof ALL_ROUTES)[number];
// BENCH_ROUTES=write,login: only these routes (for profiling; the results file then lacks the others).
const ONLY_ROUTES = process.env.BENCH_ROUTES?.split(',');
const ROUTES = ALL_ROUTES.filter((r) => !ONLY_ROUTES || ONLY_ROUTES.includes(r));

// ---- server side (child processes) ----

async function serve(name: StoreName, redisUrl: string, pgUrl: string): Promise<number> {
  const { default: express } = await import('express');
  const { default: session } = await import('express-session');
  const { tempDir } = await import('../test/helpers/tmp.js');
  const { dir } = tempDir('lapse-bench-es-');
  const store = await storeFor(name, session, redisUrl, pgUrl, dir);
  const app = express();
  app.use(session({ store, secret: 'bench-secret-bench-secret-bench-secret', resave: false, saveUninitialized: false, cookie: { maxAge: 86_400_000 } }));
  type Bag = Record<string, unknown> & { passport?: { user: string } };
  app.get('/read', (req, res) => {
    res.json({ user: (req.session as unknown as Bag).passport?.user ?? null });
  });
  let n = 0;
  app.post('/write', (req, res) => {
    (req.session as unknown as Bag).counter = ++n;
    res.json({ ok: true });
  });
  app.post('/set', (req, res) => {
    (req.session as unknown as Bag)[String(req.query.k)] = 1;
    res.json({ ok: true });
  });
  app.get('/keys', (req, res) => {
    res.json(Object.keys(req.session).filter((k) => k !== 'cookie'));
  });
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      (req.session as unknown as Bag).passport = { user: `u${++n % 1000}` };
      res.json({ ok: true });
    });
  });
  cpuRoute(app);
  return listenLocal(app);
}

async function storeFor(name: StoreName, session: typeof import('express-session'), redisUrl: string, pgUrl: string, dir: string) {
  const userId = (s: Record<string, unknown>) => (s.passport as { user?: string } | undefined)?.user;
  if (name.startsWith('lapse-')) {
    const { createStore } = await import('../packages/lapse/dist/index.js');
    const { LapseStore } = await import('../packages/lapse/dist/integrations/express-session.js');
    let backend: import('../packages/lapse/dist/core/backend.js').Backend | undefined;
    if (name === 'lapse-sqlite') {
      const b = (await import('../packages/lapse/dist/backends/sqlite/backend.js')).sqlite({ path: join(dir, 'lapse.db'), synchronous: SQLITE_FULL ? 'full' : 'normal' });
      backend = SQLITE_FULL ? b.grouped() : b;
    }
    if (name === 'lapse-redis') backend = (await import('../packages/lapse/dist/redis.js')).redis({ url: redisUrl, prefix: 'bench-lapse:' });
    if (name === 'lapse-postgres') {
      backend = (await import('../packages/lapse/dist/backends/postgres/index.js')).postgres({ url: pgUrl, schema: 'bench_lapse', poolSize: PG_POOL });
    }
    const store = createStore(backend ? { backend } : {});
    return new LapseStore({ store, userId });
  }
  if (name === 'floor') return floorStore(session);
  return peerStore(name as PeerName, session, redisUrl, dir, 'bench-peer:', { url: pgUrl, poolSize: PG_POOL });
}

/**
 * The framework's own cost, as a reference: a store that keeps plain objects in a Map, no
 * serialization, no expiry, answering at once. No real store can cost less per request, so
 * (peer - floor) / (lapse - floor) is what a store can still change.
 */
function floorStore(session: typeof import('express-session')) {
  type Plain = Record<string, unknown> & { cookie: object };
  type Cb = (err?: unknown, v?: unknown) => void;
  class FloorStore extends session.Store {
    private readonly m = new Map<string, Plain>();
    override get(sid: string, cb: (err: unknown, sess?: import('express-session').SessionData | null) => void) {
      const s = this.m.get(sid);
      cb(null, s ? ({ ...s, cookie: { ...s.cookie } } as unknown as import('express-session').SessionData) : null);
    }
    override set(sid: string, sess: import('express-session').SessionData, cb?: Cb) {
      this.m.set(sid, { ...(sess as unknown as Plain), cookie: (sess.cookie as unknown as { toJSON(): object }).toJSON() });
      cb?.();
    }
    override destroy(sid: string, cb?: Cb) {
      this.m.delete(sid);
      cb?.();
    }
    override touch(_sid: string, _sess: unknown, cb?: Cb) {
      cb?.();
    }
  }
  return new FloorStore();
}

// ---- driver ----

interface Run {
  rps: number;
  cpuUsPerReq: number;
  /** The PostgreSQL server's CPU (all its processes) per request, for the stores on it. */
  pgUsPerReq?: number;
}

type Autocannon = (opts: object) => Promise<{ requests: { average: number; total: number }; non2xx: number; errors: number }>;

async function start(name: StoreName, redisUrl: string, pgUrl: string): Promise<{ child: ChildProcess; base: string }> {
  const { child, ready } = await startChild<number>(import.meta.url, name, [`--redis=${redisUrl}`, `--pg=${pgUrl}`]);
  return { child, base: `http://127.0.0.1:${ready}` };
}

async function drive(autocannon: Autocannon, base: string, cookies: string[], route: Route, duration: number, pgPort?: number): Promise<Run> {
  const before = await cpu(base);
  const pgBefore = pgPort === undefined ? 0 : pgCpuUs(pgPort);
  let next = 0;
  const r = await autocannon({
    url: base,
    connections: CONNECTIONS,
    duration,
    requests: [
      {
        method: route === 'read' ? 'GET' : 'POST',
        path: `/${route}`,
        setupRequest: (req: { headers?: Record<string, string> }) =>
          route === 'login' ? req : { ...req, headers: { ...req.headers, cookie: cookies[next++ % cookies.length] } },
      },
    ],
  });
  const used = (await cpu(base)) - before;
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${base}/${route}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  const run: Run = { rps: r.requests.average, cpuUsPerReq: used / Math.max(1, r.requests.total) };
  if (pgPort !== undefined) run.pgUsPerReq = (pgCpuUs(pgPort) - pgBefore) / Math.max(1, r.requests.total);
  return run;
}

/** One session, 50 concurrent requests each setting its own key: how many keys are missing after. */
async function lostUpdates(base: string): Promise<number> {
  const cookie = await login(base);
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, i) => {
      const res = await fetch(`${base}/set?k=k${i}`, { method: 'POST', headers: { cookie } });
      await res.text();
    }),
  );
  const keys = (await (await fetch(`${base}/keys`, { headers: { cookie } })).json()) as string[];
  return WRITERS - keys.filter((k) => k.startsWith('k')).length;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

async function main(): Promise<void> {
  const { default: autocannon } = (await import('autocannon' as string)) as { default: Autocannon };
  const { startRedis } = await import('../test/helpers/redis-server.js');
  const { startPostgres } = await import('../test/helpers/postgres-server.js');
  const redisServer = NEEDS_REDIS ? await startRedis() : undefined;
  // fsync on (the helper's test default is off): commits reach the disk, as connect-pg-simple's do on the same server.
  const pgServer = NEEDS_PG ? await startPostgres({ fsync: 'on', full_page_writes: 'on' }).catch(async (err) => {
    await redisServer?.stop();
    throw err;
  }) : undefined;
  let pgVersion = '';
  const servers = new Map<StoreName, { child: ChildProcess; base: string; cookies: string[] }>();
  const runs = new Map<string, Run[]>();
  const lost = new Map<StoreName, number[]>(STORES.map((s) => [s, []]));
  // Ctrl-C or a kill: stop the children, then exit through 'exit', where the helpers stop
  // redis-server and PostgreSQL and remove their dirs.
  const bail = () => {
    for (const { child } of servers.values()) child.kill('SIGKILL');
    process.exit(130);
  };
  process.once('SIGINT', bail).once('SIGTERM', bail);
  try {
    if (pgServer) pgVersion = await postgresVersion(pgServer.url);
    for (const s of STORES) {
      const { child, base } = await start(s, redisServer?.url ?? '', pgServer?.url ?? '');
      const cookies: string[] = [];
      for (let i = 0; i < POOL; i++) cookies.push(await login(base));
      servers.set(s, { child, base, cookies });
    }
    for (const s of STORES) {
      const srv = servers.get(s) as { base: string; cookies: string[] };
      for (const route of ROUTES) await drive(autocannon, srv.base, srv.cookies, route, WARMUP_S);
    }
    // Short slices taking turns, the order rotated each slice: load from other work on the
    // shared machine then falls on every store alike, and each ratio compares neighbours.
    for (let slice = 0; slice < SLICES; slice++) {
      for (const route of ROUTES) {
        for (let k = 0; k < STORES.length; k++) {
          const s = STORES[(k + slice) % STORES.length] as StoreName;
          const srv = servers.get(s) as { base: string; cookies: string[] };
          const run = await drive(autocannon, srv.base, srv.cookies, route, SLICE_S, onPg(s) ? pgServer?.port : undefined);
          const key = `${s} ${route}`;
          runs.set(key, [...(runs.get(key) ?? []), run]);
          progress(`slice ${slice + 1}/${SLICES} ${key}: ${fmt(run.rps)} req/s, ${run.cpuUsPerReq.toFixed(0)} µs CPU/req${run.pgUsPerReq === undefined ? '' : `, PostgreSQL ${run.pgUsPerReq.toFixed(0)} µs/req`}`);
        }
      }
    }
    for (let round = 0; round < LOST_ROUNDS; round++) {
      for (const s of STORES) (lost.get(s) as number[]).push(await lostUpdates((servers.get(s) as { base: string }).base));
    }
  } finally {
    process.removeListener('SIGINT', bail).removeListener('SIGTERM', bail);
    try {
      await stopChildren(servers.values());
    } finally {
      try {
        await redisServer?.stop();
      } finally {
        await pgServer?.destroy();
      }
    }
  }

  const rows: Record<string, string | number>[] = [];
  const verdicts: boolean[] = [];
  for (const s of STORES) {
    const row: Record<string, string | number> = { store: s };
    const peer = PEER[s];
    for (const route of ROUTES) {
      const mine = runs.get(`${s} ${route}`) as Run[];
      const rps = mine.map((r) => r.rps);
      row[`${route} req/s`] = `${Math.round(median(rps))} (${Math.round(Math.min(...rps))}–${Math.round(Math.max(...rps))})`;
      row[`${route} CPU µs/req`] = Math.round(median(mine.map((r) => r.cpuUsPerReq)));
      if (NEEDS_PG) row[`${route} PostgreSQL CPU µs/req`] = onPg(s) ? Math.round(median(mine.map((r) => r.pgUsPerReq ?? 0))) : '';
      if (peer && STORES.includes(peer)) {
        const theirs = runs.get(`${peer} ${route}`) as Run[];
        const ratios = mine.map((r, i) => r.rps / (theirs[i] as Run).rps);
        const m = median(ratios);
        row[`${route} vs peer`] = withRange(m, ratios);
        verdicts.push(m >= (TARGET[s] ?? 1.2));
      }
    }
    const l = lost.get(s) as number[];
    row[`lost of ${WRITERS}`] = `${median(l)} (${Math.min(...l)}–${Math.max(...l)})`;
    rows.push(row);
  }
  // What each store adds to the framework's own cost (the floor row), per route: the part a store can change.
  const floorCpu = (route: Route) => median((runs.get(`floor ${route}`) as Run[]).map((r) => r.cpuUsPerReq));
  const added = (s: StoreName, route: Route) => Math.round(median((runs.get(`${s} ${route}`) as Run[]).map((r) => r.cpuUsPerReq)) - floorCpu(route));
  const addedNote = ROUTES.map((route) => `${route}: floor ${Math.round(floorCpu(route))} µs; ${STORES.filter((s) => s !== 'floor').map((s) => `${s} +${added(s, route)}`).join(', ')}`).join('; ');
  // The ceiling: req/s of the floor (a zero-cost store) over the peer's, slice by slice. LapseStore
  // cannot beat the peer by more than this, so a ceiling under 1.2 makes the 1.2x target unreachable there.
  const ceiling = Object.values(PEER)
    .filter((peer) => STORES.includes(peer))
    .map((peer) => {
      const parts = ROUTES.map((route) => {
        const f = runs.get(`floor ${route}`) as Run[];
        const ratios = (runs.get(`${peer} ${route}`) as Run[]).map((r, i) => (f[i] as Run).rps / r.rps);
        return `${route} ${withRange(median(ratios), ratios)}`;
      });
      return `floor vs ${peer}: ${parts.join(', ')}`;
    })
    .join('; ');
  const zeroLost = STORES.filter((s) => s.startsWith('lapse-')).every((s) => (lost.get(s) as number[]).every((x) => x === 0));
  const { loadavg } = await import('node:os');
  const paired = STORES.filter((s) => PEER[s] && STORES.includes(PEER[s] as StoreName));
  const targetText = paired.map((s) => `${TARGET[s] ?? 1.2}x (${s})`).join(', ') || '1.2x';
  writeResults(NAME, `express-session: LapseStore vs ${STORES.filter((s) => !s.startsWith('lapse-')).join(', ')}${SQLITE_FULL ? ' (Lapse SQLite at synchronous FULL, group commit)' : ''}`, rows, [
    ...(SQLITE_FULL ? ['Lapse SQLite: sqlite({ synchronous: \'full\' }).grouped(); better-sqlite3-session-store on better-sqlite3 defaults (rollback journal, synchronous FULL): both fsync every commit.'] : []),
    ...(NEEDS_PG
      ? [
          `PostgreSQL ${pgVersion} on 127.0.0.1, one private server for both stores (initdb in a temp dir, fsync on, full_page_writes on, synchronous_commit on: every acknowledged commit flushed, on both sides). lapse-postgres: postgres({ poolSize: ${PG_POOL} }) (group commit: statements issued together share one transaction and one WAL flush); connect-pg-simple 10 on a pg.Pool of ${PG_POOL} (createTableIfMissing, pruning off; it touches the row on every read, as express-session asks). PostgreSQL CPU µs/req: the server's processes (backends, WAL writer, checkpointer) over the slice, per request served: the database side's work, on the same 2 cores as everything else.`,
        ]
      : []),
    `1-minute load average at the end: ${loadavg()[0]?.toFixed(2)}.`,
    `autocannon, ${CONNECTIONS} connections; read and write requests spread over ${POOL} sessions; ${SLICES} slices of ${SLICE_S} s per store and route, taking turns (order rotated), after ${WARMUP_S} s warm-up. Medians, with the range over slices in brackets; "vs peer" is the median of slice-by-slice req/s ratios to the peer store on the same backend.`,
    'Each server is express 5 + express-session 1.19 (resave false, saveUninitialized false, maxAge 1 day) in its own process; CPU µs/req is the server process\'s own user+system time over the slice divided by the requests served.',
    'LapseStore runs with a userId mapping (passport.user), so its sessions are indexed per user; the peers have no such index. Lapse stores use their defaults (idleTimeout 30m, absoluteTimeout 12h, sweep every minute).',
    `Lost updates: one session, ${WRITERS} concurrent requests each setting a different key, then the keys counted; ${LOST_ROUNDS} rounds, median (range).`,
    `Target: >= ${targetText} the peer store on the same backend on every route: ${verdicts.every(Boolean) ? 'met' : 'not met'} (${verdicts.filter(Boolean).length} of ${verdicts.length}). 0 lost updates with LapseStore: ${zeroLost ? 'met' : 'not met'}.`,
    'The machine (2 cores) was shared with other work during the run: figures are noisy; the ratios of neighbouring slices are the robust part.',
    `floor = express + express-session with a store that keeps plain objects in a Map (no serialization, no expiry): the framework's own cost. Server CPU per request above the floor (median µs): ${addedNote}. A store that costs the floor plus x is at most (floor + peer's x) / (floor + x) times the peer.`,
    `Ceiling (req/s of the floor over the peer's, median of slice ratios, range): ${ceiling}. No store can beat its peer by more than its ceiling on that route.`,
  ]);
}

function onPg(s: StoreName): boolean {
  return s === 'lapse-postgres' || s === 'connect-pg-simple';
}

/**
 * CPU time (µs, user + system) of the PostgreSQL server listening on this port: its postmaster
 * (found by the `-p <port>` pg_ctl gave it) and every process it forked (backends, WAL writer,
 * checkpointer), live or exited, from /proc (Linux; clock ticks of 10 ms).
 */
function pgCpuUs(port: number): number {
  // ticks: own user + system time; reaped: the children's it has waited for (cutime + cstime).
  const stats: { pid: number; ppid: number; ticks: number; reaped: number; cmd: string }[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      stats.push({ pid: Number(pid), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]), cmd });
    } catch {
      // exited meanwhile
    }
  }
  const master = stats.find((p) => p.cmd.includes('postgres') && p.cmd.includes(` -p ${port} `));
  if (!master) return 0;
  // A child that exits within a slice (an autovacuum worker, a parallel worker) leaves the live
  // sum, and the postmaster, which reaps it, adds its time to its own cutime/cstime: counting
  // those too keeps the total from going down (it once read -518 µs per request).
  const live = stats.filter((p) => p.pid === master.pid || p.ppid === master.pid).reduce((sum, p) => sum + p.ticks, 0);
  return (live + master.reaped) * 10_000;
}

/** The server's version string (for the notes). */
async function postgresVersion(url: string): Promise<string> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query('SHOW server_version')).rows[0].server_version as string;
  } finally {
    await c.end();
  }
}

await serveOrDrive((name, redisUrl) => serve(name as StoreName, redisUrl, childArg('pg')), main);
