/**
 * Core benchmark: the Lapse memory backend against lru-cache (ttl + updateAgeOnGet), the
 * in-process cache users would pick instead. Run: npm run bench -- core
 * Knobs (environment): CORE_ROUNDS (awaited-loop rounds, default 5), CORE_SWEEP_ROUNDS
 * (default 3), CORE_PARTS (a comma list of throughput, sweep, bytes; default all),
 * CORE_OUT (the results file name, default core).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { memory } from '../packages/lapse/dist/backends/memory/memory.js';
import { ManualClock } from '../packages/lapse/dist/core/clock.js';
import { silentLogger } from '../packages/lapse/dist/util/logger.js';
import type { SessionRecord } from '../packages/lapse/dist/core/session.js';
import { createStore } from '../packages/lapse/dist/core/store.js';
import { fmt, heapUsed, measure, type OpsResult, progress, withLoopMonitor, writeResults } from './lib.js';

const N = 100_000;
const ROUNDS = Number(process.env.CORE_ROUNDS ?? 5);
const SWEEP_ROUNDS = Number(process.env.CORE_SWEEP_ROUNDS ?? 3);
const PARTS = new Set((process.env.CORE_PARTS ?? 'throughput,sweep,bytes').split(','));
const OUT = process.env.CORE_OUT ?? 'core';
const rows: Record<string, string | number>[] = [];
const notes: string[] = [];

function row(op: string, lapse: number, peer: number, peerName: string, target: number) {
  const ratio = lapse / peer;
  rows.push({
    operation: op,
    'lapse ops/s': fmt(lapse),
    'baseline ops/s': fmt(peer),
    baseline: peerName,
    ratio: ratio.toFixed(2),
    target: `>= ${target}`,
    met: ratio >= target ? 'yes' : 'no',
  });
}

/** Lapse and its peer in alternating rounds; the row carries the median ratio and the spread of the rounds. */
async function turns(op: string, target: number, peerName: string, sides: [() => Promise<OpsResult>, () => Promise<OpsResult>]) {
  const a: OpsResult[] = [];
  const b: OpsResult[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const [x, y] = r % 2 === 0 ? [await sides[0](), await sides[1]()] : ((p) => [p[1], p[0]])([await sides[1](), await sides[0]()]);
    a.push(x as OpsResult);
    b.push(y as OpsResult);
    ratios.push((x as OpsResult).opsPerSec / (y as OpsResult).opsPerSec);
  }
  const med = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)] as number;
  const sorted = [...ratios].sort((p, q) => p - q);
  const ratio = med(ratios);
  rows.push({
    operation: op,
    'lapse ops/s': fmt(med(a.map((r) => r.opsPerSec))),
    'baseline ops/s': fmt(med(b.map((r) => r.opsPerSec))),
    baseline: peerName,
    ratio: `${ratio.toFixed(2)} (${ROUNDS} rounds: ${(sorted[0] as number).toFixed(2)}–${(sorted[sorted.length - 1] as number).toFixed(2)})`,
    target: `>= ${target}`,
    met: ratio >= target ? 'yes' : 'no',
  });
}

async function throughput() {
  const store = createStore({ sweepInterval: false, logger: silentLogger, idleTimeout: '30m', maxSessions: 2 * N });
  const lru = new LRUCache<string, object>({ max: 2 * N, ttl: 30 * 60_000, updateAgeOnGet: true });
  const ids: string[] = [];
  const tokens: string[] = [];
  const secrets: Buffer[] = [];
  for (let i = 0; i < N; i++) {
    const { token, session } = await store.create({ userId: `u${i % 1000}`, data: { i } });
    ids.push(session.id);
    tokens.push(token);
    const secret = token.split('.')[1] as string;
    lru.set(session.id, { ...session, secretHash: createHash('sha256').update(secret).digest() });
    secrets.push(Buffer.from(secret));
  }
  progress(`filled ${N} sessions`);

  const lapseGet = await measure('lapse get(id)', (i) => store.get(ids[i % N] as string));
  const lruGet = await measure('lru-cache get', (i) => lru.get(ids[i % N] as string));
  row('get(id) hit', lapseGet.opsPerSec, lruGet.opsPerSec, 'lru-cache get (synchronous loop)', 0.8);

  // The #18 targets: both sides driven through the same awaited loop, alternating rounds.
  const data = { role: 'user', theme: 'dark' };
  // A cache of its own for the set rounds, so the validate peer below keeps its records.
  const lruSet = new LRUCache<string, object>({ max: 2 * N, ttl: 30 * 60_000, updateAgeOnGet: true });
  for (const id of ids) lruSet.set(id, { data, userId: null });
  await turns('get(id), awaited loop', 0.9, 'lru-cache get, awaited', [
    () => measure('lapse get(id)', (i) => store.get(ids[i % N] as string), 1000),
    () => measure('lru-cache get (awaited)', async (i) => lru.get(ids[i % N] as string), 1000),
  ]);
  await turns('set(id, data) upsert, awaited loop', 0.5, 'lru-cache set of the same data, awaited', [
    () => measure('lapse set', (i) => store.set(ids[i % N] as string, data, { userId: `u${i % 1000}` }), 1000),
    () => measure('lru-cache set (awaited)', async (i) => lruSet.set(ids[i % N] as string, { data, userId: `u${i % 1000}` }), 1000),
  ]);

  const lapseValidate = await measure('lapse validate(token)', (i) => store.validate(tokens[i % N] as string));
  const secure = await measure('lru-cache get + sha256 + timingSafeEqual', (i) => {
    const k = i % N;
    const entry = lru.get(ids[k] as string) as { secretHash: Buffer };
    const h = createHash('sha256').update(secrets[k] as Buffer).digest();
    return timingSafeEqual(h, entry.secretHash);
  });
  row('validate(token)', lapseValidate.opsPerSec, secure.opsPerSec, 'lru-cache get + SHA-256 + timingSafeEqual', 0.8);

  const lapseCreate = await measure('lapse create', () => store.create({ data: { a: 1 } }), 1000);
  const lruCreate = await measure('lru-cache set + token', () => {
    const id = randomBytes(16).toString('base64url');
    const secret = randomBytes(32).toString('base64url');
    lru.set(id, { id, data: { a: 1 }, secretHash: createHash('sha256').update(secret).digest('base64url') });
    return `${id}.${secret}`;
  }, 1000);
  row('create', lapseCreate.opsPerSec, lruCreate.opsPerSec, 'lru-cache set + token generation', 0.5);
  await store.close();
}

function record(i: number, now: number, id = randomBytes(16).toString('base64url'), secretHash?: string): SessionRecord {
  return {
    id,
    secretHash: secretHash ?? createHash('sha256').update(String(i)).digest('base64url'),
    userId: `u${i % 5000}`,
    data: '{"role":"user","theme":"dark"}',
    createdAt: now,
    lastAccessedAt: now,
    expiresAt: now + 60_000 + (i % 1000),
    absoluteExpiresAt: now + 3_600_000,
    idleTimeout: 60_000,
    accessCount: 0,
    version: 1,
    lock: null,
    ip: '127.0.0.1',
    userAgent: 'bench',
  };
}

async function sweep() {
  const M = 1_000_000;
  const totals: number[] = [];
  const blocks: number[] = [];
  let expiredAll = true;
  let now = 0;
  for (let round = 0; round < SWEEP_ROUNDS; round++) {
    const clock = new ManualClock(2_000_000_000_000);
    const backend = memory({ clock });
    const store = createStore({ backend, clock, sweepInterval: false, logger: silentLogger });
    now = clock.now();
    // The setup's records come from one buffer of random bytes and share one secret hash
    // (the sweep never reads it): the same entries, ids and expiry times as one insert each.
    const pool = randomBytes(16 * M);
    const hash = createHash('sha256').update('bench').digest('base64url');
    for (let i = 0; i < M; i++) {
      backend.insert(record(i, now, pool.toString('base64url', 16 * i, 16 * i + 16), hash), now, {});
      if (i % 250_000 === 0) progress(`sweep setup ${round + 1}/${SWEEP_ROUNDS}: ${i}/${M}`);
    }
    heapUsed();
    await clock.advance('2m');
    const { result, maxBlockMs, totalMs } = await withLoopMonitor(() => store.sweep());
    totals.push(totalMs);
    blocks.push(maxBlockMs);
    if (result.expired !== M) expiredAll = false;
    await store.close();
  }
  const med = (v: number[]) => [...v].sort((p, q) => p - q)[Math.floor(v.length / 2)] as number;
  const totalMs = med(totals);
  const maxBlockMs = med(blocks);
  rows.push({
    operation: `sweep ${fmt(M)} expired (${SWEEP_ROUNDS} rounds)`,
    'lapse ops/s': fmt((M / totalMs) * 1000),
    'baseline ops/s': '',
    baseline: `total ${(totalMs / 1000).toFixed(2)} s (${totals.map((t) => (t / 1000).toFixed(2)).join(' / ')}), longest event-loop block ${maxBlockMs.toFixed(1)} ms (${blocks.map((b) => b.toFixed(0)).join(' / ')})`,
    ratio: '',
    target: '<= 1.5 s, block <= 20 ms',
    met: totalMs <= 1500 && maxBlockMs <= 20 && expiredAll ? 'yes' : 'no',
  });

  // The peer: lru-cache holding the same number of stale entries, purged in one call.
  let t = 0;
  const lru = new LRUCache<string, SessionRecord>({ max: M + 1, ttl: 60_000, perf: { now: () => t } });
  for (let i = 0; i < M; i++) {
    const r = record(i, now, randomBytes(16).toString('base64url'), 'x');
    lru.set(r.id, r);
    if (i % 100_000 === 0) progress(`lru-cache setup: ${i}/${M}`);
  }
  t = 120_000;
  const peer = await withLoopMonitor(async () => lru.purgeStale());
  rows.push({
    operation: `lru-cache purgeStale() of ${fmt(M)} stale`,
    'lapse ops/s': '',
    'baseline ops/s': fmt((M / peer.totalMs) * 1000),
    baseline: `total ${(peer.totalMs / 1000).toFixed(2)} s, one block of ${peer.maxBlockMs.toFixed(0)} ms`,
    ratio: '',
    target: 'reference',
    met: '',
  });
}

async function bytes() {
  const M = 200_000;
  const now = Date.now();
  const recs = Array.from({ length: M }, (_, i) => record(i, now));
  const base = heapUsed();
  const backend = memory();
  for (const r of recs) backend.insert(r, now, {});
  const lapseBytes = (heapUsed() - base) / M;
  backend.clear();
  await backend.close();
  const base2 = heapUsed();
  const lru = new LRUCache<string, SessionRecord>({ max: M, ttl: 60_000, updateAgeOnGet: true });
  for (const r of recs) lru.set(r.id, { ...r });
  const lruBytes = (heapUsed() - base2) / M;
  lru.clear();
  // Keep the source records alive until both sides are measured, so neither side's figure
  // is lowered by the originals being collected while its copies are made.
  if (recs.length !== M) throw new Error('unreachable');
  rows.push({
    operation: 'bytes per session (heap)',
    'lapse ops/s': `${lapseBytes.toFixed(0)} B`,
    'baseline ops/s': `${lruBytes.toFixed(0)} B`,
    baseline: 'lru-cache holding the same record',
    ratio: (lapseBytes / lruBytes).toFixed(2),
    target: '<= 1.3',
    met: lapseBytes / lruBytes <= 1.3 ? 'yes' : 'no',
  });
  notes.push(`bytes per session: ${M} sessions; each side stores its own copy of the same 14-field record (strings shared), so both figures include that copy.`);
}

if (PARTS.has('throughput')) await throughput();
if (PARTS.has('sweep')) await sweep();
if (PARTS.has('bytes')) await bytes();
notes.push('set: `store.set(id, data, { userId })` over 100k live ids (an upsert of a live session) against `lru.set(id, { data, userId })` in a cache of its own, both awaited in the same loop; rounds alternate the order; median of per-round ratios and their range.');
notes.push('sweep: the setup inserts 1M records one by one (ids drawn from one random buffer, one shared secret hash, which the sweep never reads); the longest event-loop block is measured by a 1 ms interval timer and monitorEventLoopDelay during store.sweep().');
notes.push('get/validate/create: sequential awaits on one core; Lapse answers through its async Backend interface (a Promise per call), lru-cache synchronously.');
notes.push('validate includes SHA-256 of the secret and a constant-time compare on both sides; Lapse also coalesces the expiry write (touchInterval).');
writeResults(OUT, 'Lapse core (memory backend) vs lru-cache', rows, notes);
