/**
 * The contended update: 50 concurrent writers on ONE session, each request adding one to a
 * counter. Lapse's Express middleware (`req.lapse.update(prev => next)`, versioned, no update
 * lost) vs express-session with the store users would pick on the same backend: MemoryStore,
 * better-sqlite3-session-store (SQLite), connect-redis (a real redis-server). express-session
 * saves whatever each request read, so it loses most of these updates; the bench counts them.
 * Each server runs in its own process; autocannon drives it from here, store pairs in turns.
 * Run: flock /tmp/lapse-bench.lock node --import tsx bench/contended-update.ts
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { cpu, cpuRoute, inGenerations, listenLocal, login, serveOrDrive, startChild } from './child-server.js';
import { fmt, progress, writeResults } from './lib.js';
import { median, withRange } from './stats.js';
import { type PeerName, peerStore } from './peer-stores.js';

const QUICK = process.env.BENCH_QUICK === '1';
const SLICE_S = QUICK ? 1 : 3;
/** Server processes are started afresh this many times a run (see inGenerations). */
const GENERATIONS = QUICK ? 1 : 3;
const SLICES_PER_GENERATION = QUICK ? 1 : 2;
const SLICES = GENERATIONS * SLICES_PER_GENERATION;
const WARMUP_S = QUICK ? 1 : 2;
const WRITERS = 50;

const PAIRS = [
  ['lapse-memory', 'memorystore'],
  ['lapse-sqlite', 'better-sqlite3-session-store'],
  ['lapse-redis', 'connect-redis'],
] as const;
type Name = (typeof PAIRS)[number][number];

// ---- server side (child processes) ----

async function serve(name: Name, redisUrl: string): Promise<number> {
  const { default: express } = await import('express');
  const { tempDir } = await import('../test/helpers/tmp.js');
  const { dir } = tempDir('lapse-bench-cu-');
  const app = express();
  if (name.startsWith('lapse-')) {
    const { createStore } = await import('../packages/lapse/dist/index.js');
    const { lapse } = await import('../packages/lapse/dist/express.js');
    let backend: import('../packages/lapse/dist/core/backend.js').Backend | undefined;
    if (name === 'lapse-sqlite') backend = (await import('../packages/lapse/dist/sqlite.js')).sqlite({ path: join(dir, 'lapse.db') });
    if (name === 'lapse-redis') backend = (await import('../packages/lapse/dist/redis.js')).redis({ url: redisUrl, prefix: 'bench-cu-lapse:' });
    const store = createStore(backend ? { backend } : {});
    app.use(lapse({ store, cookie: { secure: false } }));
    app.post('/login', (req, res, next) => void req.lapse.login({ userId: 'u1', data: { n: 0 } }).then(() => res.json({ ok: true }), next));
    app.post('/inc', (req, res, next) => {
      req.lapse.update<{ n: number }>((prev) => ({ ...prev, n: prev.n + 1 })).then(() => res.json({ ok: true }), next);
    });
    app.get('/n', (req, res) => {
      res.json({ n: (req.lapse.session?.data as { n?: number } | undefined)?.n ?? null });
    });
  } else {
    const { default: session } = await import('express-session');
    const store = await peerStore(name as PeerName, session, redisUrl, dir, 'bench-cu-peer:');
    app.use(session({ store, secret: 'bench-secret-bench-secret-bench-secret', resave: false, saveUninitialized: false, cookie: { maxAge: 86_400_000 } }));
    type Bag = { n?: number; passport?: { user: string } };
    app.post('/login', (req, res, next) => {
      req.session.regenerate((err) => {
        if (err) return next(err);
        const s = req.session as unknown as Bag;
        s.passport = { user: 'u1' };
        s.n = 0;
        res.json({ ok: true });
      });
    });
    app.post('/inc', (req, res) => {
      const s = req.session as unknown as Bag;
      s.n = (s.n ?? 0) + 1;
      res.json({ ok: true });
    });
    app.get('/n', (req, res) => {
      res.json({ n: (req.session as unknown as Bag).n ?? null });
    });
  }
  cpuRoute(app);
  return listenLocal(app);
}


// ---- driver ----

interface Run {
  rps: number;
  p99: number;
  cpuUsPerReq: number;
  ok: number;
  lost: number;
  non2xx: number;
}

type Autocannon = (opts: object) => Promise<{
  requests: { average: number; total: number };
  latency: { p99: number };
  non2xx: number;
  errors: number;
  '2xx': number;
}>;

async function start(name: Name, redisUrl: string): Promise<{ child: ChildProcess; base: string }> {
  const { child, ready } = await startChild<number>(import.meta.url, name, [`--redis=${redisUrl}`]);
  return { child, base: `http://127.0.0.1:${ready}` };
}

async function counter(base: string, cookie: string): Promise<number> {
  return ((await (await fetch(`${base}/n`, { headers: { cookie } })).json()) as { n: number }).n;
}

/** One slice: a fresh session, WRITERS connections incrementing it, then the counter checked. */
async function drive(autocannon: Autocannon, base: string, duration: number): Promise<Run> {
  const cookie = await login(base);
  const before = await cpu(base);
  const r = await autocannon({ url: `${base}/inc`, method: 'POST', connections: WRITERS, duration, headers: { cookie } });
  const used = (await cpu(base)) - before;
  if (r.errors > 0) throw new Error(`${base}: ${r.errors} errors`);
  const ok = r['2xx'];
  const n = await counter(base, cookie);
  // Requests autocannon cut at the end may still have been applied: a count above ok is not a loss.
  return { rps: r.requests.average, p99: r.latency.p99, cpuUsPerReq: used / Math.max(1, r.requests.total), ok, lost: Math.max(0, ok - n), non2xx: r.non2xx };
}

const range = (xs: number[], digits = 0) => withRange(median(xs), xs, digits);

async function main(): Promise<void> {
  const { default: autocannon } = (await import('autocannon' as string)) as { default: Autocannon };
  const { startRedis } = await import('../test/helpers/redis-server.js');
  const redisServer = await startRedis();
  const runs = new Map<Name, Run[]>();
  const load: number[][] = [];
  const { loadavg } = await import('node:os');
  try {
    await inGenerations(GENERATIONS, PAIRS.flat(), (s) => start(s, redisServer.url), async (servers, gen) => {
      for (const [s, srv] of servers) {
        await drive(autocannon, srv.base, WARMUP_S);
        progress(`generation ${gen + 1}/${GENERATIONS}: warmed up ${s}`);
      }
      // A B A B: each slice runs both stores of a pair back to back, the order swapped every slice.
      for (let i = 0; i < SLICES_PER_GENERATION; i++) {
        const slice = gen * SLICES_PER_GENERATION + i;
        load.push(loadavg());
        for (const pair of PAIRS) {
          const order = slice % 2 === 0 ? pair : ([pair[1], pair[0]] as const);
          for (const s of order) {
            const run = await drive(autocannon, (servers.get(s) as { base: string }).base, SLICE_S);
            runs.set(s, [...(runs.get(s) ?? []), run]);
            progress(`slice ${slice + 1}/${SLICES} ${s}: ${fmt(run.rps)} req/s, p99 ${run.p99} ms, lost ${run.lost} of ${run.ok}, non-2xx ${run.non2xx}`);
          }
        }
      }
    });
  } finally {
    await redisServer.stop();
  }

  const rows: Record<string, string | number>[] = [];
  const verdicts: string[] = [];
  for (const [mine, peer] of PAIRS) {
    const a = runs.get(mine) as Run[];
    const b = runs.get(peer) as Run[];
    const ratios = a.map((r, i) => r.rps / (b[i] as Run).rps);
    const m = median(ratios);
    for (const [name, rs, vs] of [
      [mine, a, withRange(m, ratios)],
      [peer, b, ''],
    ] as const) {
      rows.push({
        server: name,
        'req/s': range(rs.map((r) => r.rps)),
        'p99 ms': range(rs.map((r) => r.p99)),
        'CPU µs/req': Math.round(median(rs.map((r) => r.cpuUsPerReq))),
        'non-2xx': rs.reduce((n, r) => n + r.non2xx, 0),
        'lost updates (of acknowledged)': `${rs.reduce((n, r) => n + r.lost, 0)} of ${rs.reduce((n, r) => n + r.ok, 0)}`,
        'vs peer': vs,
        target: vs ? '>= 1.3, 0 lost' : '',
        met: vs ? (m >= 1.3 && a.every((r) => r.lost === 0 && r.non2xx === 0) ? 'yes' : 'no') : '',
      });
    }
    verdicts.push(`${mine}: ${m.toFixed(2)}x`);
  }
  const loads = load.map((l) => (l[0] as number).toFixed(2)).join(', ');
  writeResults('contended-update', 'Contended update: 50 writers on one session, lapse/express vs express-session + its store', rows, [
    `autocannon, ${WRITERS} connections all on one session's cookie, POST /inc (the counter + 1); ${SLICES} slices of ${SLICE_S} s per server, each pair back to back with the order swapped every slice (A B, B A, …), after ${WARMUP_S} s warm-up; a fresh session per slice. The server processes are started afresh ${GENERATIONS} times (${SLICES_PER_GENERATION} slices each): a process keeps its placement on the host for life. Medians with the range over slices; "vs peer" is the median of slice-by-slice req/s ratios.`,
    'Lapse: express 5 + lapse/express, `req.lapse.update(prev => ({ ...prev, n: prev.n + 1 }))` (versioned; one update per session in flight in the process, so they queue instead of colliding). Peers: express-session 1.19 (resave false) with MemoryStore, better-sqlite3-session-store (better-sqlite3 defaults: rollback journal, synchronous FULL) and connect-redis; Lapse SQLite runs its defaults (WAL, synchronous NORMAL).',
    'Lost updates: acknowledged (2xx) increments minus the counter read after the slice. express-session saves what each request read, so concurrent requests overwrite each other.',
    `1-minute load average at each slice: ${loads} (2 cores, shared with other work).`,
    `Ratios: ${verdicts.join(', ')}.`,
  ]);
}

await serveOrDrive((name, redisUrl) => serve(name as Name, redisUrl), main);
