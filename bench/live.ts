/**
 * Live connections you can trust, what it costs:
 * 1. revoke on node A -> disconnect on node C: two `lapse serve` processes on one
 *    redis-server; a socket.io-client socket on C; the time from sending POST
 *    /v1/sessions/revoke to A until C's socket sees `disconnect` (so it includes A's HTTP
 *    round trip). Rounds of REVOKES revokes; p50 and p99 per round.
 * 2. handshake cost: websocket handshakes per second (connect + disconnect, CONCURRENCY at a
 *    time) on a bare Socket.IO server and on one with the tracker authenticating every
 *    handshake against a memory store (validate + failure limit), in alternating rounds.
 * Run: npm run build && node --import tsx bench/live.ts
 */
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Server } from 'socket.io';
import { io } from 'socket.io-client';
import { silentLogger } from '../packages/lapse/dist/util/logger.js';
import { mountLiveConnections } from '../packages/lapse/dist/socket.io/index.js';
import { createStore } from '../packages/lapse/dist/core/store.js';
import { randomPrefix, startRedis } from '../test/helpers/redis-server.js';
import { ensureBuilt, type Running, serve } from '../test/helpers/serve-process.js';
import { tempDir } from '../test/helpers/tmp.js';
import { progress, writeResults } from './lib.js';

const ROUNDS = 5;
const REVOKES = 200;
const HANDSHAKES = 1000;
const CONCURRENCY = 10;
const ADMIN = `lapse_admin_${'b'.repeat(43)}`;
const HEADERS = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const spread = (xs: number[], digits = 1) => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;

async function revokeRound(a: Running, c: Running): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < REVOKES; i++) {
    const r = await fetch(`${a.url}/v1/sessions`, { method: 'POST', headers: HEADERS, body: JSON.stringify({ userId: `u${i}` }) });
    const { token } = (await r.json()) as { token: string };
    const s = io(c.url, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', reject);
    });
    const gone = new Promise<number>((resolve) => s.once('disconnect', () => resolve(performance.now())));
    const t0 = performance.now();
    await fetch(`${a.url}/v1/sessions/revoke`, { method: 'POST', headers: HEADERS, body: JSON.stringify({ token }) });
    out.push((await gone) - t0);
    if (i % 50 === 0) progress(`revoke ${i}/${REVOKES}`);
  }
  return out.sort((x, y) => x - y);
}

async function handshakes(url: string, auth: () => Record<string, unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next++ < HANDSHAKES) {
      const s = io(url, { auth: auth(), transports: ['websocket'], reconnection: false, forceNew: true });
      await new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('connect_error', reject);
      });
      s.disconnect();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return HANDSHAKES / ((performance.now() - t0) / 1000);
}

async function handshakeServers() {
  const bareHttp = createServer();
  const bare = new Server(bareHttp, { transports: ['websocket'], serveClient: false });
  const authHttp = createServer();
  const store = createStore({ sweepInterval: false, logger: silentLogger });
  const live = mountLiveConnections(authHttp, {
    store,
    requireSession: true,
    failureLimit: { fail: () => 0 },
    logger: silentLogger,
    serverOptions: { transports: ['websocket'], serveClient: false },
  });
  for (const h of [bareHttp, authHttp]) await new Promise<void>((r) => h.listen(0, '127.0.0.1', r));
  const url = (h: typeof bareHttp) => `http://127.0.0.1:${(h.address() as AddressInfo).port}`;
  const tokens: string[] = [];
  for (let i = 0; i < 100; i++) tokens.push((await store.create({ userId: `h${i}` })).token);
  let k = 0;
  return {
    bare: () => handshakes(url(bareHttp), () => ({})),
    authed: () => handshakes(url(authHttp), () => ({ token: tokens[k++ % tokens.length] })),
    async close() {
      await live.close();
      await store.close();
      bare.close();
      authHttp.close();
    },
  };
}

async function main(): Promise<void> {
  ensureBuilt();
  const redis = await startRedis();
  const tmp = tempDir('lapse-bench-live-');
  const nodes: Running[] = [];
  try {
    const prefix = randomPrefix();
    for (const name of ['a', 'c']) {
      const cwd = join(tmp.dir, name);
      mkdirSync(cwd);
      nodes.push(await serve(cwd, { LAPSE_BACKEND: redis.url, LAPSE_REDIS_PREFIX: prefix, LAPSE_ADMIN_KEY: ADMIN, LAPSE_RATE_LIMIT: 'off' }));
    }
    const [a, c] = nodes as [Running, Running];
    const p50: number[] = [];
    const p99: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const lat = await revokeRound(a, c);
      p50.push(pct(lat, 50));
      p99.push(pct(lat, 99));
      progress(`revoke round ${r + 1}: p50 ${pct(lat, 50).toFixed(1)} ms, p99 ${pct(lat, 99).toFixed(1)} ms`);
    }

    const hs = await handshakeServers();
    const bare: number[] = [];
    const authed: number[] = [];
    await hs.bare(); // warm-up
    await hs.authed();
    for (let r = 0; r < ROUNDS; r++) {
      bare.push(await hs.bare());
      authed.push(await hs.authed());
      progress(`handshake round ${r + 1}: bare ${bare[r]?.toFixed(0)}/s, authenticated ${authed[r]?.toFixed(0)}/s`);
    }
    await hs.close();

    const ratios = authed.map((x, i) => x / (bare[i] as number));
    writeResults('live', 'Live connections: cross-node revoke and authenticated handshakes', [
      { measure: `revoke on A -> disconnect on C, p50 (ms, ${REVOKES} revokes/round)`, median: median(p50).toFixed(1), spread: spread(p50), rounds: ROUNDS },
      { measure: `revoke on A -> disconnect on C, p99 (ms, ${REVOKES} revokes/round)`, median: median(p99).toFixed(1), spread: spread(p99), rounds: ROUNDS },
      { measure: 'handshakes/s, bare Socket.IO', median: median(bare).toFixed(0), spread: spread(bare, 0), rounds: ROUNDS },
      { measure: 'handshakes/s, tracker + store validate (requireSession)', median: median(authed).toFixed(0), spread: spread(authed, 0), rounds: ROUNDS },
      { measure: 'authenticated / bare', median: median(ratios).toFixed(2), spread: spread(ratios, 2), rounds: ROUNDS },
    ], [
      'Revoke latency includes the HTTP round trip of the revoke on A; the notice itself is one Redis PUBLISH to C.',
      `Handshakes: ${HANDSHAKES} per round, ${CONCURRENCY} at a time, websocket only, client and servers in this one process, memory store.`,
      'The machine is shared (2 cores) with other work running at the same time: figures are noisy; medians of rounds with their spread.',
    ]);
  } finally {
    for (const n of nodes) n.child.kill('SIGKILL');
    await redis.stop();
    tmp.cleanup();
  }
}

await main();
