/**
 * Lapse on PostgreSQL, in one run on one server it starts itself (initdb in a temp dir):
 * 1. the store's validate, create, update and sweep next to the bare statements a hand-written
 *    session table would run (same server, same pool size), rounds alternating;
 * 2. Express with Lapse's middleware (lapse/express) next to express-session + connect-pg-simple,
 *    the same three routes (read, write, login), each app in its own process, driven by
 *    autocannon from here; then 50 concurrent writes to one session, lost updates counted.
 * Run: node --expose-gc --import tsx bench/postgres.ts
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { postgres } from '../packages/lapse/dist/backends/postgres/index.js';
import { silentLogger } from '../packages/lapse/dist/util/logger.js';
import { createStore } from '../packages/lapse/dist/core/store.js';
import { startPostgres } from '../test/helpers/postgres-server.js';
import { alternate, concurrent, fmt, type OpsResult, progress, withLoopMonitor, writeResults } from './lib.js';

const MS = 1500;
const ROUNDS = 5;
/** Exploration knobs (the committed results run everything): PG_BENCH_ONLY=http, PG_BENCH_ROUTES=write,login, PG_BENCH_ROUNDS=3. */
const ONLY_HTTP = process.env.PG_BENCH_ONLY === 'http';
const ROUTES = process.env.PG_BENCH_ROUTES?.split(',');
const CALLERS = 50;
const POOL = 10;
const TOKENS = 2000;
const SWEEP_ROWS = 20_000;
const HTTP_S = 3;
const HTTP_ROUNDS = Number(process.env.PG_BENCH_ROUNDS ?? 5);
const CONNECTIONS = 50;
const LOST_WRITERS = 50;
const DATA = { userName: 'alice@example.com', roles: ['user', 'editor'], cart: [101, 202, 303], theme: 'dark' };

// ---- child: one Express app on the given database ----

async function serve(side: 'lapse' | 'express-session', url: string): Promise<void> {
  const { default: express } = await import('express');
  // Each login is another user: people log in, not one person fifty times at once.
  let logins = 0;
  const app = express();
  if (side === 'lapse') {
    const { lapse } = await import('../packages/lapse/dist/integrations/express.js');
    const store = createStore({ backend: postgres({ url, schema: 'bench_lapse', poolSize: POOL, logger: silentLogger }), logger: silentLogger, sweepInterval: false });
    app.use(lapse({ store, cookie: { secure: false } }));
    app.get('/read', (req, res) => void res.json(req.lapse.session?.data ?? null));
    app.post('/write', (req, res, next) => {
      req.lapse.update<{ n?: number }>((prev) => ({ ...prev, n: (prev.n ?? 0) + 1 })).then((s) => res.json(s.data), next);
    });
    app.post('/login', (req, res, next) => {
      req.lapse.login({ userId: `user-${logins++}`, data: DATA }).then(() => res.json({ ok: true }), next);
    });
  } else {
    const { default: session } = await import('express-session');
    const { default: connectPg } = (await import('connect-pg-simple' as string)) as { default: (s: unknown) => new (o: object) => import('express-session').Store };
    const PgStore = connectPg(session);
    const pool = new pg.Pool({ connectionString: url, max: POOL });
    // Its documented setup: its own table, created when missing; pruning off (no timer in the run).
    const store = new PgStore({ pool, createTableIfMissing: true, pruneSessionInterval: false });
    app.use(session({ store, secret: 'bench-secret-bench-secret', resave: false, saveUninitialized: false, cookie: { secure: false } }));
    type S = { data?: unknown; n?: number; userId?: string };
    app.get('/read', (req, res) => void res.json((req.session as unknown as S).data ?? null));
    app.post('/write', (req, res) => {
      const s = req.session as unknown as S;
      s.n = (s.n ?? 0) + 1;
      res.json({ ...(s.data as object), n: s.n });
    });
    app.post('/login', (req, res, next) => {
      const s = req.session as unknown as S;
      s.userId = `user-${logins++}`;
      s.data = DATA;
      req.session.save((err) => (err ? next(err) : res.json({ ok: true })));
    });
  }
  const server = app.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    process.stdout.write(`port ${port}\n`);
  });
}

// ---- parent ----

function spawnApp(side: string, url: string): Promise<{ child: ChildProcess; base: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), 'serve', side, url], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (l) => {
      const m = /^port (\d+)$/.exec(l);
      if (m) resolve({ child, base: `http://127.0.0.1:${m[1]}` });
    });
    child.once('exit', (code) => reject(new Error(`${side} app exited with ${code}`)));
  });
}

/** Logs in once and returns the cookie pair the app set. */
async function login(base: string): Promise<string> {
  const r = await fetch(`${base}/login`, { method: 'POST' });
  const cookie = r.headers.get('set-cookie');
  if (!r.ok || !cookie) throw new Error(`login on ${base} failed: ${r.status}`);
  return cookie.split(';')[0] as string;
}

type Autocannon = (o: object) => Promise<{ requests: { average: number }; non2xx: number; errors: number; timeouts: number }>;

async function main(): Promise<void> {
  const server = await startPostgres({ fsync: 'on', full_page_writes: 'on', max_connections: '200' });
  const url = server.url;
  const bare = new pg.Pool({ connectionString: url, max: POOL });
  const backend = postgres({ url, schema: 'bench', poolSize: POOL, logger: silentLogger });
  const store = createStore({ backend, sweepInterval: false, logger: silentLogger, idleTimeout: '30m' });
  const children: ChildProcess[] = [];
  try {
    // The bare side: a session table as one would write it by hand (connect-pg-simple's shape, plus an expiry index).
    await bare.query(`CREATE TABLE bare_sessions (sid text PRIMARY KEY, sess text NOT NULL, expire bigint NOT NULL);
      CREATE INDEX bare_sessions_expire ON bare_sessions (expire)`);
    const dataText = JSON.stringify(DATA);
    const q = {
      get: { name: 'bare_get', text: 'SELECT sess, expire FROM bare_sessions WHERE sid = $1' },
      insert: { name: 'bare_insert', text: 'INSERT INTO bare_sessions (sid, sess, expire) VALUES ($1, $2, $3)' },
      update: { name: 'bare_update', text: 'UPDATE bare_sessions SET sess = $2 WHERE sid = $1' },
    };
    const tokens: string[] = [];
    const ids: string[] = [];
    for (let i = 0; i < TOKENS; i++) {
      const { token, session } = await store.create({ userId: `user${i % 500}`, data: DATA });
      tokens.push(token);
      ids.push(session.id);
      await bare.query({ ...q.insert, values: [`raw${i}`, dataText, Date.now() + 3_600_000] });
    }
    const pick = <T>(list: T[], i: number): T => list[i % list.length] as T;
    let bareN = 0;
    const results: { op: string; lapse: OpsResult; bare: OpsResult; ratio: number }[] = [];
    const pair = async (op: string, lapseFn: (i: number) => Promise<unknown>, bareFn: (i: number) => Promise<unknown>) => {
      const r = await alternate(ROUNDS, () => concurrent(`lapse ${op}`, lapseFn, CALLERS, MS), () => concurrent(`bare ${op}`, bareFn, CALLERS, MS));
      results.push({ op, lapse: r.a, bare: r.b, ratio: r.ratio });
    };
    if (!ONLY_HTTP) {
      await pair('validate vs SELECT', (i) => store.validate(pick(tokens, i)), (i) => bare.query({ ...q.get, values: [`raw${i % TOKENS}`] }));
      await pair('update vs UPDATE', (i) => store.update(pick(ids, i), { ...DATA, n: i }), (i) =>
        bare.query({ ...q.update, values: [`raw${i % TOKENS}`, JSON.stringify({ ...DATA, n: i })] }),
      );
      await pair('create vs INSERT', (i) => store.create({ userId: `user${i % 500}`, data: DATA }), () =>
        bare.query({ ...q.insert, values: [`new${bareN++}`, dataText, Date.now() + 3_600_000] }),
      );
    }

    // Sweep: SWEEP_ROWS expired rows each side; Lapse in batches of 500 (one transaction each), bare in one DELETE.
    const t0 = Date.now();
    await store.clear();
    for (let i = 0; i < SWEEP_ROWS; i += 1000) {
      await backend.pool.query(`INSERT INTO bench.lapse_sessions SELECT 'sw' || g, 'h', 'u' || (g % 100), '{}', $1::bigint, $1::bigint,
        $1::bigint + 1, $1::bigint + 10, 1, 0, 1, nextval('bench.lapse_recency'), NULL, NULL, NULL, NULL, NULL FROM generate_series($2::int, $2::int + 999) g`, [t0, i]);
      await bare.query(`INSERT INTO bare_sessions SELECT 'sw' || g, '{}', $1::bigint + 1 FROM generate_series($2::int, $2::int + 999) g`, [t0, i]);
    }
    await backend.pool.query(`UPDATE bench.lapse_counters SET sessions = ${SWEEP_ROWS}, users = 100 WHERE shard = 0;
      INSERT INTO bench.lapse_users SELECT 'u' || g, ${SWEEP_ROWS / 100} FROM generate_series(0, 99) g`);
    await backend.pool.query('ANALYZE bench.lapse_sessions; ANALYZE bare_sessions');
    // The longest one sweep transaction holds its locks, seen as the slowest batch.
    let slowestBatchMs = 0;
    const lapseSweep = await withLoopMonitor(async () => {
      let n = 0;
      for (;;) {
        const s = performance.now();
        const ended = await backend.sweep(t0 + 100, 500);
        slowestBatchMs = Math.max(slowestBatchMs, performance.now() - s);
        n += ended.length;
        if (ended.length < 500) return n;
      }
    });
    const bareSweep = await withLoopMonitor(async () => (await bare.query('DELETE FROM bare_sessions WHERE expire <= $1', [t0 + 100])).rowCount);

    // Express: each app in its own process, on the same server.
    const { default: autocannon } = (await import('autocannon' as string)) as { default: Autocannon };
    const apps = {
      lapse: await spawnApp('lapse', url),
      'express-session': await spawnApp('express-session', url),
    };
    children.push(apps.lapse.child, apps['express-session'].child);
    // One session per connection on each side, so the write route measures writes, not 50 writers fighting over one session.
    const cookies = {
      lapse: await Promise.all(Array.from({ length: CONNECTIONS }, () => login(apps.lapse.base))),
      'express-session': await Promise.all(Array.from({ length: CONNECTIONS }, () => login(apps['express-session'].base))),
    };
    const routes = [
      { route: 'GET /read', method: 'GET', path: '/read', cookie: true },
      { route: 'POST /write', method: 'POST', path: '/write', cookie: true },
      { route: 'POST /login', method: 'POST', path: '/login', cookie: false },
    ].filter((r) => !ROUTES || ROUTES.some((x) => r.path === `/${x}`));
    const http: {
      route: string; lapse: number; es: number; ratio: number; lapseRuns: number[]; esRuns: number[]; failures: number;
      ratios: number[]; cpu: { lapse: number; es: number };
    }[] = [];
    for (const r of routes) {
      const runs: Record<'lapse' | 'express-session', number[]> = { lapse: [], 'express-session': [] };
      const cpuPerReq: Record<'lapse' | 'express-session', number[]> = { lapse: [], 'express-session': [] };
      let failures = 0;
      const drive = async (side: 'lapse' | 'express-session', duration: number) => {
        let k = 0;
        const cpu0 = cpuMs(apps[side].child.pid);
        const list = cookies[side];
        const out = await autocannon({
          url: apps[side].base, connections: CONNECTIONS, duration,
          requests: [{
            method: r.method, path: r.path,
            setupRequest: (req: { headers?: Record<string, string> }) =>
              r.cookie ? { ...req, headers: { ...req.headers, cookie: list[k++ % list.length] } } : req,
          }],
        });
        failures += out.non2xx + out.errors + out.timeouts;
        cpuPerReq[side].push(((cpuMs(apps[side].child.pid) - cpu0) * 1000) / Math.max(1, out.requests.average * duration));
        return out.requests.average;
      };
      for (const side of ['lapse', 'express-session'] as const) await drive(side, 1); // warm-up
      failures = 0;
      cpuPerReq.lapse = [];
      cpuPerReq['express-session'] = [];
      for (let round = 0; round < HTTP_ROUNDS; round++) {
        const order = round % 2 === 0 ? (['lapse', 'express-session'] as const) : (['express-session', 'lapse'] as const);
        for (const side of order) {
          runs[side].push(await drive(side, HTTP_S));
          progress(`${r.route} ${side}: ${fmt(runs[side].at(-1) as number)} req/s`);
        }
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
      const ratios = runs.lapse.map((v, i) => v / (runs['express-session'][i] as number));
      http.push({
        route: r.route, lapse: median(runs.lapse), es: median(runs['express-session']), ratio: median(ratios), lapseRuns: runs.lapse, esRuns: runs['express-session'], failures,
        ratios, cpu: { lapse: median(cpuPerReq.lapse), es: median(cpuPerReq['express-session']) },
      });
    }

    // 50 concurrent writes to one fresh session on each side: how many survive?
    const lost: Record<string, number> = {};
    for (const side of ['lapse', 'express-session'] as const) {
      const cookie = await login(apps[side].base);
      const replies = await Promise.all(
        Array.from({ length: LOST_WRITERS }, () => fetch(`${apps[side].base}/write`, { method: 'POST', headers: { cookie } })),
      );
      const ok = replies.filter((x) => x.ok).length;
      const final = (await (await fetch(`${apps[side].base}/read`, { headers: { cookie } })).json()) as { n?: number } | null;
      const n = side === 'lapse' ? (final?.n ?? 0) : await esCount(url, cookie);
      lost[side] = ok - n;
    }

    const load = loadavg()[0]?.toFixed(1);
    const spread = (xs: number[]) => `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`;
    const rows: Record<string, string | number>[] = [
      ...results.map((r) => ({ part: 'store vs bare SQL', op: r.op, lapse: Math.round(r.lapse.opsPerSec), other: Math.round(r.bare.opsPerSec), ratio: r.ratio.toFixed(2) })),
      {
        part: 'store vs bare SQL',
        op: `sweep ${SWEEP_ROWS} expired rows (rows/s)`,
        lapse: Math.round((lapseSweep.result / lapseSweep.totalMs) * 1000),
        other: Math.round(((bareSweep.result ?? 0) / bareSweep.totalMs) * 1000),
        ratio: ((lapseSweep.result / lapseSweep.totalMs) / ((bareSweep.result ?? 0) / bareSweep.totalMs)).toFixed(2),
      },
      ...http.map((h) => ({
        part: 'express: lapse vs express-session + connect-pg-simple (req/s)',
        op: `${h.route} (runs: lapse ${spread(h.lapseRuns)}, other ${spread(h.esRuns)}; per-round ratios ${h.ratios.map((x) => x.toFixed(2)).join(' ')}; app CPU µs/req lapse ${h.cpu.lapse.toFixed(0)}, other ${h.cpu.es.toFixed(0)}; failed requests ${h.failures})`,
        lapse: Math.round(h.lapse),
        other: Math.round(h.es),
        ratio: h.ratio.toFixed(2),
      })),
      { part: `express: ${LOST_WRITERS} concurrent writes to one session`, op: 'lost updates', lapse: lost.lapse ?? -1, other: lost['express-session'] ?? -1, ratio: '' },
    ];
    const met = http.every((h) => h.ratio >= 1.3) && lost.lapse === 0;
    writeResults(ONLY_HTTP ? 'postgres-explore' : 'postgres', 'Lapse on PostgreSQL: store vs bare SQL, and Express vs express-session + connect-pg-simple (same server, one run)', rows, [
      `PostgreSQL ${(await bare.query('SHOW server_version')).rows[0].server_version} on 127.0.0.1 (initdb in a temp dir, fsync on, full_page_writes on, shared_buffers 32MB as the test helper sets it, max_connections 200, defaults otherwise); pools of ${POOL} connections on every side. Sessions carry ${dataText.length} bytes of JSON data.`,
      `store vs bare SQL: ${CALLERS} concurrent callers for ${MS} ms per round, ${ROUNDS} rounds alternating; ops/s are each side's median round, the ratio the median of the per-round ratios. Bare = one named statement on a (sid, sess, expire) table: what a hand-written store does, without tokens, hashing, caps, counts or leases.`,
      'validate = one SELECT by primary key + SHA-256 check + decode (expiry writes coalesced, none in the run); update = one plpgsql function (lease and version checks, rewrite); create = one function (caps, counters: the user row and this connection shard, insert). The Lapse write route uses req.lapse.update(fn): the function runs on the session this request validated, version-checked.',
      'Group commit (Lapse side): reads, updates and inserts issued together (in one turn of the event loop, or while a few such statements are in flight) go to the server as one statement each kind: one round trip, one transaction, one WAL flush for all of them, every caller answered after that commit (synchronous_commit on: the same durability as one commit per call), each with its own row or refusal. The bare side and connect-pg-simple send one statement per call, as written.',
      `sweep: ${SWEEP_ROWS} expired rows; Lapse deletes them 500 per transaction (expiry index, SKIP LOCKED, counters kept), its slowest transaction took ${slowestBatchMs.toFixed(1)} ms; bare: one DELETE of all of them (holds its locks for the whole ${bareSweep.totalMs.toFixed(0)} ms).`,
      `express: each app in its own process, autocannon ${CONNECTIONS} connections, ${HTTP_S} s per round, ${HTTP_ROUNDS} rounds alternating; req/s are medians, the ratio the median per-round ratio. express-session as documented (resave: false, saveUninitialized: false) on connect-pg-simple 10 (createTableIfMissing). read = a session cookie read back (express-session also touches the row on every read); write = one counter incremented in the session (Lapse: update with a function, version-checked); login = a new session (no cookie sent).`,
      `lost updates: ${LOST_WRITERS} concurrent POST /write on one new session, acknowledged writes minus the final counter.`,
      `Target: >= 1.3x connect-pg-simple on every route and 0 lost updates -> ${met ? 'met' : 'NOT met'}.`,
      `Shared 2-core machine (other helpers' builds and tests ran at the same time), load average ${load} at the end: absolute figures move between runs; compare within a run.`,
    ]);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await store.close();
    await bare.end();
    await server.destroy();
  }
}

/** CPU time (user + system) of a process so far, in ms, from /proc (Linux). */
function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the comm field; clock ticks of 10 ms.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The counter express-session stored for a cookie (its signed sid, unsigned by hand). */
async function esCount(url: string, cookie: string): Promise<number> {
  const sid = decodeURIComponent(cookie.split('=')[1] ?? '').replace(/^s:/, '').replace(/\.[^.]+$/, '');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query('SELECT sess FROM session WHERE sid = $1', [sid]);
    return (r.rows[0]?.sess as { n?: number } | undefined)?.n ?? 0;
  } finally {
    await c.end();
  }
}

if (process.argv[2] === 'serve') await serve(process.argv[3] as 'lapse' | 'express-session', process.argv[4] as string);
else await main();
