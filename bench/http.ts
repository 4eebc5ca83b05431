/**
 * HTTP benchmark: POST /v1/sessions/validate of the Lapse service on the SQLite backend, next
 * to a bare Fastify route that parses the same JSON body and returns a small JSON, in the
 * same run. Each server runs in its own process (one core); autocannon drives it from here.
 * Two reference rows serve the same validate from a listener below Fastify (see serveBelow).
 * Run: node --expose-gc --import tsx bench/http.ts
 */
import type { ChildProcess } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { inGenerations, serveOrDrive, startChild } from './child-server.js';
import { fmt, progress, writeResults } from './lib.js';
import { median, withRange } from './stats.js';

const SLICE_S = 3;
/** Server processes are started afresh for each generation (see inGenerations). */
const GENERATIONS = 3;
const SLICES_PER_GENERATION = 3;
const SLICES = GENERATIONS * SLICES_PER_GENERATION;
const WARMUP_S = 3;
const CONNECTIONS = 32;

interface Target {
  url: string;
  headers: Record<string, string>;
  body: string;
}

// ---- server side (child processes) ----

/** A session as the service answers it (the same fields and about the same bytes), for the 'bare-session' route. */
function sessionLike(id: string) {
  const t = Date.now();
  return {
    id, userId: 'bench', data: { role: 'user', plan: 'pro' }, createdAt: t, lastAccessedAt: t, expiresAt: t + 1_800_000,
    absoluteExpiresAt: t + 43_200_000, accessCount: 1, version: 1, status: 'active', lock: null, meta: {},
  };
}

/** 'bare': a small JSON answer; 'bare-session': the same body shape and size as the service's answer, no headers of its own. */
async function serveBare(kind: string): Promise<Target> {
  const { default: Fastify } = await import('fastify');
  const app = Fastify();
  app.post('/validate', async (request) => {
    const { token } = request.body as { token: string };
    if (kind === 'bare-session') return { session: sessionLike(token.slice(0, 22)) };
    return { session: { id: token.slice(0, 22), userId: 'bench', status: 'active' } };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/validate`, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: `${'a'.repeat(22)}.${'b'.repeat(43)}` }) };
}

async function serveLapse(accessLog: boolean): Promise<Target> {
  return (await startLapse(accessLog)).target;
}

/** The service on a new SQLite file with one session, listening; its app and what the driver sends it. */
async function startLapse(accessLog: boolean) {
  const { createServer } = await import('../packages/lapse-server/dist/server/index.js');
  const { tempDir } = await import('../test/helpers/tmp.js');
  const { dir } = tempDir('lapse-bench-http-');
  const { openSync } = await import('node:fs');
  const pino = (await import('pino')).default;
  // Access logs, when on, go to /dev/null: the cost of writing them is what we measure.
  const logStream = pino.destination({ dest: openSync('/dev/null', 'w'), sync: true });
  const app = await createServer({ backend: `sqlite:${dir}/lapse.db`, dataDir: dir, logLevel: 'info', accessLog, logStream });
  const { token } = await app.lapse.store.create({ userId: 'bench', data: { role: 'user', plan: 'pro' } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  const target: Target = {
    url: `http://127.0.0.1:${port}/v1/sessions/validate`,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${app.lapse.generatedAdminKey}` },
    body: JSON.stringify({ token }),
  };
  return { app, target };
}

/**
 * Reference only, not the service: the same validate served by a request listener put ahead
 * of the service's Fastify handler on the service's own HTTP server (the same process, store,
 * keys and answer). 'below': the key check, the JSON body, store.validate, the service's API
 * headers and its answer; nothing else the route does (schema check, metrics, rate limit,
 * error format, access log). 'below-nowork': the same answer and headers, no work at all.
 * What they measure is how far a route that bypassed Fastify could go.
 */
async function serveBelow(work: boolean): Promise<Target> {
  const { app, target } = await startLapse(false);
  const { API_HEADERS } = await import('../packages/lapse-server/dist/server/security.js');
  const { bearer } = await import('../packages/lapse-server/dist/server/auth.js');
  const { httpError } = await import('../packages/lapse-server/dist/server/errors.js');
  // The catalogue the server's own modules use (a second copy would fail its instanceof checks).
  const { errors } = await import('lapse/internal');
  const answer = (res: ServerResponse, status: number, body: string) =>
    res.writeHead(status, { ...API_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) }).end(body);
  const fail = (res: ServerResponse, err: unknown) => {
    const { status, body } = httpError(err);
    answer(res, status, JSON.stringify(body));
  };
  const { store, keys } = app.lapse;
  const token = (JSON.parse(target.body) as { token: string }).token;
  const fixed = JSON.stringify({ session: await store.validate(token) });
  const server = app.server;
  const fastify = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST' || req.url !== '/v1/sessions/validate') {
      for (const l of fastify) l.call(server, req, res);
      return;
    }
    const key = bearer(req.headers.authorization);
    if (work && (key === null || keys.verify(key) === null)) return fail(res, errors.unauthorized('unknown or revoked key'));
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      if (!work) return answer(res, 200, fixed);
      let body: { token?: unknown };
      try {
        body = JSON.parse(text) as { token?: unknown };
      } catch (err) {
        return fail(res, err);
      }
      if (typeof body.token !== 'string') return fail(res, errors.invalidInput('token must be a string'));
      store.validate(body.token).then(
        (session) => (session ? answer(res, 200, JSON.stringify({ session })) : fail(res, errors.invalidToken())),
        (err: unknown) => fail(res, err),
      );
    });
  });
  return target;
}

// ---- driver ----

interface Run {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

type Autocannon = (opts: object) => Promise<{
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}>;

async function start(kind: string): Promise<{ child: ChildProcess; target: Target }> {
  const { child, ready } = await startChild<Target>(import.meta.url, kind);
  return { child, target: ready };
}

async function drive(autocannon: Autocannon, target: Target, duration: number): Promise<Run> {
  const r = await autocannon({ url: target.url, method: 'POST', headers: target.headers, body: target.body, connections: CONNECTIONS, duration });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors };
}

async function main(): Promise<void> {
  const { default: autocannon } = (await import('autocannon' as string)) as { default: Autocannon };
  const kinds = ['bare', 'bare-session', 'lapse', 'lapse-logged', 'below', 'below-nowork'] as const;
  const runs = new Map<string, Run[]>(kinds.map((k) => [k, []]));
  await inGenerations(GENERATIONS, kinds, start, async (servers, gen) => {
    for (const kind of kinds) await drive(autocannon, (servers.get(kind) as { target: Target }).target, WARMUP_S);
    // Short slices, taking turns: the machine is shared, and load that comes and goes then
    // falls on every server alike; each ratio compares neighbouring slices.
    for (let i = 1; i <= SLICES_PER_GENERATION; i++) {
      const slice = gen * SLICES_PER_GENERATION + i;
      for (const kind of kinds) {
        const run = await drive(autocannon, (servers.get(kind) as { target: Target }).target, SLICE_S);
        if (run.non2xx > 0 || run.errors > 0) throw new Error(`${kind}: ${run.non2xx} non-2xx, ${run.errors} errors`);
        (runs.get(kind) as Run[]).push(run);
        progress(`slice ${slice}/${SLICES} ${kind}: ${fmt(run.rps)} req/s, p99 ${run.p99} ms`);
      }
    }
  });
  const bare = runs.get('bare') as Run[];
  const label: Record<string, string> = {
    bare: 'bare Fastify route (small JSON)',
    'bare-session': 'bare Fastify route answering a session-sized JSON (same fields as the service)',
    lapse: 'Lapse POST /v1/sessions/validate, SQLite',
    'lapse-logged': 'same, with access logs on',
    below: 'reference: the same validate served below Fastify (key check, body, store.validate, same headers and answer; nothing else)',
    'below-nowork': "reference: the service's answer and headers from that listener, no work",
  };
  const rows = kinds.map((k) => {
    const r = runs.get(k) as Run[];
    const slices = r.map((x, i) => x.rps / (bare[i] as Run).rps);
    const ratio = median(slices);
    return {
      server: label[k] as string,
      'req/s': Math.round(median(r.map((x) => x.rps))),
      'p50 ms': median(r.map((x) => x.p50)),
      'p99 ms': median(r.map((x) => x.p99)),
      'vs bare': k === 'bare' ? '1.00' : withRange(ratio, slices),
      target: k === 'lapse' ? '>= 0.7' : '',
      met: k === 'lapse' ? (ratio >= 0.7 ? 'yes' : 'no') : '',
    };
  });
  writeResults('http', 'HTTP: validate on SQLite vs a bare Fastify route', rows, [
    `autocannon, ${CONNECTIONS} connections; ${SLICES} slices of ${SLICE_S} s per server, taking turns, after ${WARMUP_S} s warm-up; medians (req/s, latency) and the median of slice-by-slice ratios. Each server in its own process, started afresh ${GENERATIONS} times (${SLICES_PER_GENERATION} slices each): a process keeps its placement on the host for life, and two processes of one build were seen a quarter apart.`,
    'Lapse runs with its defaults (key check, JSON-schema validation, security headers, metrics), the admin key, one live session, except that the first Lapse row turns access logs off; they are on by default (LAPSE_ACCESS_LOG), and the row "with access logs on" is the service as installed, its lines written to /dev/null.',
    'The bare route parses the same JSON body and returns a small JSON object, with no auth and no storage. The bare-session route answers a body of the same fields and size as the service (about 280 bytes) from the same kind of route: what the answer\'s size costs on its own. "vs bare": the median of slice-by-slice ratios to the small-JSON route, lowest and highest slice in brackets.',
    'The two reference rows are not the service: a request listener ahead of its Fastify handler on the same server and process. "below" does the key check, the JSON body, store.validate and sends the service\'s headers and answer, and nothing else the route does (schema check, metrics, failure limit, error hooks, access log): how far a route that bypassed Fastify could go. "below-nowork" sends the same answer and headers with no work.',
  ]);
}

await serveOrDrive(
  (kind) => (kind.startsWith('bare') ? serveBare(kind) : kind.startsWith('below') ? serveBelow(kind === 'below') : serveLapse(kind === 'lapse-logged')),
  main,
);
