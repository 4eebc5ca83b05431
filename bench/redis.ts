/**
 * Lapse on Redis next to raw ioredis on the same server: create / validate / update through
 * the store against SET / GET, one caller in sequence and 50 concurrent callers. Also the
 * Redis memory a session costs. Raw and Lapse alternate in rounds (median of 5). Starts its own redis-server on a free loopback port.
 * Run: node --expose-gc --import tsx bench/redis.ts
 */
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { redis } from '../packages/lapse/dist/backends/redis/backend.js';
import { silentLogger } from '../packages/lapse/dist/util/logger.js';
import { createStore } from '../packages/lapse/dist/core/store.js';
import { startRedis } from '../test/helpers/redis-server.js';
import { alternate, concurrent, measure, type OpsResult, writeResults } from './lib.js';

const MS = 1000;
const ROUNDS = 5;
const CALLERS = 50;
const TOKENS = 2000;
const MEMORY_SESSIONS = 20_000;
const DATA = { userName: 'alice@example.com', roles: ['user', 'editor'], cart: [101, 202, 303], theme: 'dark' };

async function usedMemory(client: Redis): Promise<number> {
  const info = await client.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

const server = await startRedis();
const raw = new Redis(server.url);
const rawAp = new Redis(server.url, { enableAutoPipelining: true });
const backend = redis({ url: server.url, prefix: 'bench:', logger: silentLogger });
const store = createStore({ backend, sweepInterval: false, logger: silentLogger, idleTimeout: '30m' });
try {
  const dataText = JSON.stringify(DATA);
  // Memory first, on the fresh server (UNLINK frees in the background, which would blur a later reading).
  // What N sessions (with a user, the data above, ip and user agent) add to used_memory.
  const memStore = createStore({ backend: redis({ url: server.url, prefix: 'mem:', logger: silentLogger }), sweepInterval: false, logger: silentLogger });
  const before = await usedMemory(raw);
  let oneId = '';
  for (let i = 0; i < MEMORY_SESSIONS; i += 500) {
    const batch = await Promise.all(
      Array.from({ length: 500 }, (_, k) =>
        memStore.create({ userId: `user${(i + k) % 5000}`, data: DATA, ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0' }),
      ),
    );
    oneId = batch[0]?.session.id ?? oneId;
  }
  const perSession = ((await usedMemory(raw)) - before) / MEMORY_SESSIONS;
  const keyBytes = Number(await raw.memory('USAGE', `mem:s:{${oneId}}`));
  await memStore.clear();
  await memStore.close();

  for (let i = 0; i < TOKENS; i++) await raw.set(`raw:${i}`, dataText);
  const tokens: string[] = [];
  const ids: string[] = [];
  for (let i = 0; i < TOKENS; i++) {
    const { token, session } = await store.create({ userId: `user${i % 500}`, data: DATA });
    tokens.push(token);
    ids.push(session.id);
  }
  const pick = <T>(list: T[], i: number): T => list[i % list.length] as T;

  // The machine is shared: raw and Lapse alternate in rounds (see alternate()).
  const pair = async (
    run: (name: string, fn: (i: number) => Promise<unknown>) => Promise<OpsResult>,
    names: [string, string],
    rawFn: (i: number) => Promise<unknown>,
    lapseFn: (i: number) => Promise<unknown>,
  ): Promise<{ raw: OpsResult; lapse: OpsResult; ratio: number }> => {
    const r = await alternate(ROUNDS, () => run(names[1], lapseFn), () => run(names[0], rawFn));
    return { raw: r.b, lapse: r.a, ratio: r.ratio };
  };

  const results: Array<{ mode: string; op: string; lapse: OpsResult; raw: OpsResult; ratio: number }> = [];
  for (const [mode, run] of [
    ['sequential', (name: string, fn: (i: number) => Promise<unknown>) => measure(name, fn, MS)],
    [`${CALLERS} concurrent`, (name: string, fn: (i: number) => Promise<unknown>) => concurrent(name, fn, CALLERS, MS)],
  ] as const) {
    const get = await pair(run, [`${mode} raw GET`, `${mode} validate`], (i) => raw.get(`raw:${i % TOKENS}`), (i) =>
      store.validate(pick(tokens, i)),
    );
    results.push({ mode, op: 'validate vs GET', ...get });
    // Lapse's own client sends the commands of one tick in one write; a raw client can batch with auto-pipelining. Shown so the comparison is fair both ways.
    const getAp = await pair(run, [`${mode} raw GET (auto-pipelined)`, `${mode} validate`], (i) => rawAp.get(`raw:${i % TOKENS}`), (i) =>
      store.validate(pick(tokens, i)),
    );
    results.push({ mode, op: 'validate vs GET (raw client auto-pipelined)', ...getAp });
    const upd = await pair(run, [`${mode} raw SET`, `${mode} update`], (i) => raw.set(`raw:${i % TOKENS}`, dataText), (i) =>
      store.update(pick(ids, i), { ...DATA, n: i }),
    );
    results.push({ mode, op: 'update vs SET', ...upd });
    const create = await pair(run, [`${mode} raw SET`, `${mode} create`], (i) => raw.set(`raw:${i % TOKENS}`, dataText), (i) =>
      store.create({ userId: `user${i % 500}`, data: DATA }),
    );
    results.push({ mode, op: 'create vs SET', ...create });
  }

  const load = loadavg()[0]?.toFixed(1);
  const rows = results.map((r) => ({
    mode: r.mode,
    op: r.op,
    'lapse ops/s': Math.round(r.lapse.opsPerSec),
    'raw ops/s': Math.round(r.raw.opsPerSec),
    ratio: r.ratio.toFixed(2),
  }));
  const validateRatios = results.filter((r) => r.op === 'validate vs GET').map((r) => r.ratio);
  writeResults('redis', 'Lapse on Redis vs raw ioredis (same server)', rows, [
    `redis-server ${(await raw.info('server')).match(/redis_version:(\S+)/)?.[1]} on 127.0.0.1; raw = a default ioredis client (no pipelining) unless marked; Lapse's client corks its socket for the rest of a tick, so the commands of one tick leave in one writev (docs/redis.md). Sessions carry ${dataText.length} bytes of JSON data.`,
    'validate = store.validate(token): one GET + SHA-256 check + the record decoded (JSON.parse of record and data, deep freeze) unless its stored text is byte-identical to the last one decoded for that id (decodeCache, on by default; every read still goes to Redis); expiry writes are coalesced, none fall in the run. Raw GET reads a string of the same data and decodes nothing.',
    'update = store.update(id, data): one Lua script (lease + version check, rewrite); create = one Lua script (caps, SET PX, 5 index writes).',
    `Target validate >= 0.7x raw GET: ${validateRatios.map((r) => r.toFixed(2)).join(' (sequential), ')} (${CALLERS} concurrent) -> ${validateRatios.every((r) => r >= 0.7) ? 'met' : 'NOT met'}.`,
    `Shared 2-core machine, load average ${load} at the end of the timed part: absolute figures move a lot between runs; raw and Lapse alternate in ${ROUNDS} rounds, the order swapped every round; ops/s are the median round of each, the ratio is the median of the ${ROUNDS} per-round ratios.`,
    `Memory per session (user, ${dataText.length} B data, ip, user agent, all indexes; ${MEMORY_SESSIONS} sessions): ${Math.round(perSession)} bytes of used_memory; the session key alone: ${keyBytes} bytes (MEMORY USAGE).`,
  ]);
} finally {
  await store.close();
  raw.disconnect();
  rawAp.disconnect();
  await server.stop();
}
