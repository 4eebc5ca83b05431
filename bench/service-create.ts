/**
 * The service's login path: POST /v1/sessions (a create) of `lapse serve` on SQLite
 * (synchronous NORMAL), with the file group-committed as the service opens it, next to the
 * same service on the plain SQLite backend (one transaction per write), in the same run.
 * Each server runs in its own process; autocannon drives both from here, in turns.
 * Run: node --expose-gc --import tsx bench/service-create.ts (or `npm run bench -- service-create`)
 */
import type { ChildProcess } from 'node:child_process';
import { serveOrDrive, startChild, stopChildren } from './child-server.js';
import { fmt, progress, writeResults } from './lib.js';
import { median, withRange } from './stats.js';

const SLICE_S = 3;
const SLICES = 7;
const WARMUP_S = 2;
const CONNECTIONS = 32;

interface Target {
  url: string;
  headers: Record<string, string>;
  body: string;
}

async function serve(kind: string): Promise<Target> {
  const { createServer } = await import('../packages/lapse-server/dist/server/index.js');
  const { sqlite } = await import('lapse/sqlite');
  const { createStore, silentLogger } = await import('lapse/internal');
  const { tempDir } = await import('../test/helpers/tmp.js');
  const { dir } = tempDir('lapse-bench-service-create-');
  const path = `${dir}/lapse.db`;
  // 'plain': the store the service would open, on the ungrouped backend (the service closes neither).
  const store = kind === 'plain' ? createStore({ backend: sqlite({ path, logger: silentLogger }), logger: silentLogger }) : undefined;
  const app = await createServer({ backend: `sqlite:${path}`, dataDir: dir, logLevel: 'silent', ...(store ? { store } : {}) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/v1/sessions`,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${app.lapse.generatedAdminKey}` },
    body: JSON.stringify({ data: { role: 'user', plan: 'pro' } }),
  };
}

type Autocannon = (opts: object) => Promise<{ requests: { average: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number }>;
interface Run {
  rps: number;
  p50: number;
  p99: number;
}

async function main(): Promise<void> {
  const { default: autocannon } = (await import('autocannon' as string)) as { default: Autocannon };
  const kinds = ['grouped', 'plain'] as const;
  const servers = new Map<string, { child: ChildProcess; ready: Target }>();
  const runs = new Map<string, Run[]>(kinds.map((k) => [k, []]));
  const drive = async (t: Target, duration: number) => {
    const r = await autocannon({ url: t.url, method: 'POST', headers: t.headers, body: t.body, connections: CONNECTIONS, duration });
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`${r.non2xx} non-2xx, ${r.errors} errors`);
    return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 };
  };
  try {
    for (const k of kinds) servers.set(k, await startChild<Target>(import.meta.url, k));
    for (const k of kinds) await drive((servers.get(k) as { ready: Target }).ready, WARMUP_S);
    for (let slice = 1; slice <= SLICES; slice++) {
      // The order swaps every slice: neither side always runs after the other.
      for (const k of slice % 2 ? kinds : [...kinds].reverse()) {
        const run = await drive((servers.get(k) as { ready: Target }).ready, SLICE_S);
        (runs.get(k) as Run[]).push(run);
        progress(`slice ${slice}/${SLICES} ${k}: ${fmt(run.rps)} req/s, p99 ${run.p99} ms`);
      }
    }
  } finally {
    await stopChildren(servers.values());
  }
  const plain = runs.get('plain') as Run[];
  const label = { grouped: 'lapse serve, SQLite (group commit, as it opens the file)', plain: 'same service on the plain SQLite backend' };
  const rows = kinds.map((k) => {
    const r = runs.get(k) as Run[];
    const ratios = r.map((x, i) => x.rps / (plain[i] as Run).rps);
    return {
      server: label[k],
      'req/s': Math.round(median(r.map((x) => x.rps))),
      'p50 ms': median(r.map((x) => x.p50)),
      'p99 ms': median(r.map((x) => x.p99)),
      'vs plain': k === 'plain' ? '1.00' : withRange(median(ratios), ratios),
    };
  });
  writeResults('service-create', 'The service: POST /v1/sessions (create) on SQLite, group commit vs one transaction per write', rows, [
    `autocannon, ${CONNECTIONS} connections; ${SLICES} slices of ${SLICE_S} s per server, taking turns (the order swapped every slice), after ${WARMUP_S} s warm-up; medians (req/s, latency) and the median of slice-by-slice ratios, lowest and highest in brackets. Each server in its own process.`,
    'Both at synchronous NORMAL (WAL), with the service defaults (key check, JSON-schema validation, security headers, metrics, access logs off). Each request creates a session without a user; the files grow by every create.',
  ]);
}

await serveOrDrive((kind) => serve(kind), main);
