/**
 * SQLite writes at equal durability: Lapse's store.create / store.update next to bare
 * better-sqlite3 INSERT / UPDATE statements (one transaction each) on a file with the same
 * settings, at synchronous FULL (an fsync per commit: what survives power loss) and NORMAL.
 * Lapse runs with group commit (`sqlite({ synchronous }).grouped()`) driven by 32 concurrent
 * callers, as a server's requests are, and without it; the bare statement cannot group (each
 * call is its own transaction), so it runs in a plain loop, its best case.
 * Run: flock -x /tmp/lapse-cpu.lock node --expose-gc --import tsx bench/sqlite-durable.ts
 * Knobs: BENCH_LEVELS (full,normal), BENCH_QUICK=1, DURABLE_OUT (results name, default sqlite-durable).
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Backend } from '../packages/lapse/dist/core/backend.js';
import { sqlite } from '../packages/lapse/dist/backends/sqlite/backend.js';
import { silentLogger } from '../packages/lapse/dist/util/logger.js';
import { createStore } from '../packages/lapse/dist/core/store.js';
import { newId } from '../packages/lapse/dist/core/token.js';
import { tempDir } from '../test/helpers/tmp.js';
import { withRange } from './stats.js';
import { concurrent, fmt, inTurns, measure, type OpsResult, roundRatios, writeResults } from './lib.js';

const QUICK = process.env.BENCH_QUICK === '1';
const ROUNDS = QUICK ? 1 : 5;
const TURN_MS = QUICK ? 300 : 800;
const CALLERS = 32;
const SEED = 20_000;
const tmp = tempDir('lapse-bench-durable-');
const rows: Record<string, string | number>[] = [];
const loads: number[] = [];

function bareDb(path: string, synchronous: string) {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma('cache_size = -32768');
  db.exec('CREATE TABLE bare (id TEXT PRIMARY KEY, data TEXT NOT NULL)');
  return { db, insert: db.prepare('INSERT INTO bare (id, data) VALUES (?, ?)'), update: db.prepare('UPDATE bare SET data = ? WHERE id = ?') };
}

async function level(sync: 'full' | 'normal') {
  const bare = bareDb(join(tmp.dir, `bare-${sync}.db`), sync);
  const open = (grouped: boolean): Backend => {
    const b = sqlite({ path: join(tmp.dir, `lapse-${sync}-${grouped ? 'g' : 'd'}.db`), synchronous: sync, logger: silentLogger });
    return grouped ? b.grouped() : b;
  };
  const grouped = createStore({ backend: open(true), sweepInterval: false, logger: silentLogger });
  const direct = createStore({ backend: open(false), sweepInterval: false, logger: silentLogger });
  const ids: Record<string, string[]> = { g: [], d: [] };
  for (const [k, s] of [['g', grouped], ['d', direct]] as const) {
    for (let i = 0; i < SEED; i += 500) {
      const made = await Promise.all(Array.from({ length: 500 }, () => s.create({ userId: `u${i % 97}`, data: { i } })));
      for (const m of made) ids[k]?.push(m.session.id);
    }
  }
  // The bare rows get random ids, as sessions have (a session id is a random token): each insert
  // lands on a random leaf of the id b-tree, as Lapse's does. `seq` ids (b-0, b-1, …) land on the
  // rightmost leaf, which no session store can do: that side is shown for reference only.
  const seedIds = Array.from({ length: SEED }, newId);
  for (let i = 0; i < SEED; i++) bare.insert.run(seedIds[i], JSON.stringify({ i }));
  let b = 0;
  let u = 0;
  const sides = {
    create: [
      () => concurrent(`${sync} grouped create x${CALLERS}`, (i) => grouped.create({ userId: `u${i % 97}`, data: { i } }), CALLERS, TURN_MS),
      () => measure(`${sync} direct create (loop)`, (i) => direct.create({ userId: `u${i % 97}`, data: { i } }), TURN_MS),
      () => measure(`${sync} bare INSERT, random ids (loop)`, () => bare.insert.run(newId(), '{"a":1}'), TURN_MS),
      () => measure(`${sync} bare INSERT, sequential ids (loop)`, () => bare.insert.run(`b-${b++}`, '{"a":1}'), TURN_MS),
    ],
    update: [
      () => concurrent(`${sync} grouped update x${CALLERS}`, (i) => grouped.update((ids.g as string[])[i % SEED] as string, { i }), CALLERS, TURN_MS),
      () => measure(`${sync} direct update (loop)`, (i) => direct.update((ids.d as string[])[i % SEED] as string, { i }), TURN_MS),
      () => measure(`${sync} bare UPDATE (loop)`, () => bare.update.run(`{"u":${u}}`, seedIds[u++ % SEED]), TURN_MS),
    ],
  };
  const out: Record<string, OpsResult[]> = {};
  for (const [op, s] of Object.entries(sides)) {
    loads.push(loadavg()[0] as number);
    const { results, ratios, runs } = await inTurns(ROUNDS, s, 2);
    out[op] = results;
    // Ratios to side 2, the bare statement on random ids: the median of per-round ratios, and their spread.
    results.forEach((r, i) => {
      const target = i === 0 ? 0.5 : undefined;
      const rr = roundRatios(runs[i] as OpsResult[], runs[2] as OpsResult[]);
      rows.push({
        durability: sync.toUpperCase(),
        operation: r.name,
        'ops/s (median round)': fmt(r.opsPerSec),
        'vs bare (random ids)': i === 2 ? '1.00' : withRange(ratios[i] as number, rr),
        target: target ? `>= ${target}` : '',
        met: target ? ((ratios[i] as number) >= target ? 'yes' : 'no') : '',
      });
    });
  }
  await grouped.close();
  await direct.close();
  bare.db.close();
  return out;
}

// BENCH_LEVELS=normal (or full) runs one level only, for a quick look; the results file wants both.
for (const sync of (process.env.BENCH_LEVELS ?? 'full,normal').split(',') as ('full' | 'normal')[]) await level(sync);
tmp.cleanup();
writeResults(process.env.DURABLE_OUT ?? 'sqlite-durable', 'SQLite writes at equal durability: Lapse (group commit) vs the bare statement, FULL and NORMAL', rows, [
  `Each file: WAL, 32 MiB page cache, the synchronous level of its row; ${fmt(SEED)} sessions (rows) before timing. Sides take turns of ${TURN_MS} ms, ${ROUNDS} rounds, the order rotated every round; ops/s is each side's median round, "vs bare" the median of per-round ratios to the bare statement on random ids at that level, with the lowest and highest round in brackets.`,
  `"grouped": store.create / store.update on sqlite({ synchronous }).grouped(), ${CALLERS} concurrent callers (each awaits its write, as a request does); the writes of one event-loop turn share a transaction and its fsync. "direct": the same store on the plain backend, one awaited call at a time (one transaction per write). "bare": a prepared INSERT / UPDATE by primary key, one autocommit transaction per call, in a plain loop, on random 22-character ids (as session ids are: each write lands on a random leaf of the id b-tree, as Lapse's do). The sequential-id INSERT (b-0, b-1, …: always the rightmost leaf, which no session store can do) is shown for reference.`,
  'A Lapse create also writes its slot, four indexes and the per-user counters; an update bumps the version and checks the lease; the bare table has one primary key.',
  `1-minute load average before each comparison: ${loads.map((l) => l.toFixed(2)).join(', ')} (2 cores, shared with other work).`,
]);
