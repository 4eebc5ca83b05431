/**
 * Where the time of a SQLite create goes: the Lapse v2 insert (slot + id UNIQUE + four indexes +
 * counting triggers + SLOT / NEXT_RECENCY subqueries) on a 20k-row WAL file at synchronous NORMAL,
 * then the same insert with one part taken away at a time. Each variant is its own file, one
 * autocommit insert per call. "frames/commit" is WAL pages written per insert (measured with
 * autocheckpoint off): at NORMAL a commit's cost is mostly those page writes, so it tracks ops/s.
 * The tables copy schema.ts (not imported: variants drop parts of it).
 * Run: flock -x /tmp/lapse-cpu.lock node --expose-gc --import tsx bench/sqlite-create-cost.ts
 * Knobs: COST_ROUNDS (5), COST_OUT (results name, default sqlite-create-cost).
 */
import { statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { tempDir } from '../test/helpers/tmp.js';
import { fmt, inTurns, measure, type OpsResult, writeResults } from './lib.js';

const ROUNDS = Number(process.env.COST_ROUNDS ?? 5);
const TURN_MS = 400;
const SEED = 20_000;
const tmp = tempDir('lapse-bench-create-cost-');

const COLS = `secret_hash TEXT NOT NULL, user_id TEXT, data TEXT NOT NULL, created_at INTEGER NOT NULL,
  last_accessed_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, absolute_expires_at INTEGER NOT NULL,
  idle_timeout INTEGER NOT NULL, access_count INTEGER NOT NULL, version INTEGER NOT NULL, recency INTEGER NOT NULL,
  lock_owner TEXT, lock_fence INTEGER, lock_expires_at INTEGER, ip TEXT, user_agent TEXT`;
const INDEXES: Record<string, string> = {
  expires: 'CREATE INDEX s_exp ON s (expires_at)',
  recency: 'CREATE INDEX s_rec ON s (recency)',
  user: 'CREATE INDEX s_user ON s (user_id, recency) WHERE user_id IS NOT NULL',
  lock: 'CREATE INDEX s_lock ON s (lock_expires_at) WHERE lock_expires_at IS NOT NULL',
};
const COUNTERS = `CREATE TABLE m (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  INSERT INTO m VALUES ('sessions', 0), ('users', 0);
  CREATE TABLE u (user_id TEXT PRIMARY KEY, sessions INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TRIGGER u_ai AFTER INSERT ON u BEGIN UPDATE m SET value = value + 1 WHERE key = 'users'; END;`;
const TRIGGER = `CREATE TRIGGER s_ai AFTER INSERT ON s BEGIN UPDATE m SET value = value + 1 WHERE key = 'sessions';
  INSERT INTO u (user_id, sessions) SELECT NEW.user_id, 1 WHERE NEW.user_id IS NOT NULL
    ON CONFLICT (user_id) DO UPDATE SET sessions = sessions + 1; END;`;

interface Variant {
  /** id index: full UNIQUE (v2), partial unique over displaced rows only, or none. */
  id?: 'unique' | 'partial' | 'none';
  indexes?: string[];
  /** Counting: triggers (v2), only the lapse_meta sessions row, both counts in lapse_meta (no lapse_users), or none. */
  counters?: 'triggers' | 'meta' | 'meta-users' | 'none';
  /** SLOT and NEXT_RECENCY as subqueries (v2) or bound values. */
  subqueries?: boolean;
  /** The bench's bare table: (id TEXT PRIMARY KEY, data), nothing else. */
  bare?: boolean;
}
const ALL = Object.keys(INDEXES);
const VARIANTS: Record<string, Variant> = {
  'v2 insert (all parts)': {},
  'id: partial unique (slot < 0)': { id: 'partial' },
  'id: no index': { id: 'none' },
  'no expires_at index': { indexes: ALL.filter((k) => k !== 'expires') },
  'no (user_id, recency) index': { indexes: ALL.filter((k) => k !== 'user') },
  'no lock index (NULL: never written)': { indexes: ALL.filter((k) => k !== 'lock') },
  'no counting triggers': { counters: 'none' },
  'sessions counter only (no lapse_users)': { counters: 'meta' },
  'no subqueries (slot, recency bound)': { subqueries: false },
  'no recency index, no subqueries': { indexes: ALL.filter((k) => k !== 'recency'), subqueries: false },
  'partial id + no triggers': { id: 'partial', counters: 'none' },
  'counts in lapse_meta only (users by index probe)': { counters: 'meta-users' },
  'partial id + counts in lapse_meta only': { id: 'partial', counters: 'meta-users' },
  'no secondary index, no triggers, no subqueries': { id: 'none', indexes: [], counters: 'none', subqueries: false },
  'bench bare table (id TEXT PK, data), random ids': { bare: true },
};

const rand52 = () => Math.floor(Math.random() * 2 ** 52);
const randId = () => Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);

function open(name: string, v: Variant) {
  const path = join(tmp.dir, `${name.replace(/\W+/g, '_')}.db`);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('cache_size = -32768');
  let n = 0;
  let one: () => void;
  if (v.bare) {
    db.exec('CREATE TABLE bare (id TEXT PRIMARY KEY, data TEXT NOT NULL)');
    const ins = db.prepare('INSERT INTO bare (id, data) VALUES (?, ?)');
    // A random id, as a session's: a prefix that counts up (b-0-…, b-1-…) would put most
    // inserts on the rightmost leaf, which no session store can do.
    one = () => ins.run(randId(), '{"a":1}');
  } else {
    const id = v.id ?? 'unique';
    db.exec(`CREATE TABLE s (slot INTEGER PRIMARY KEY, id TEXT NOT NULL ${id === 'unique' ? 'UNIQUE' : ''}, ${COLS})`);
    if (id === 'partial') db.exec('CREATE UNIQUE INDEX s_id ON s (id) WHERE slot < 0');
    for (const k of v.indexes ?? ALL) db.exec(INDEXES[k] as string);
    const counters = v.counters ?? 'triggers';
    if (counters === 'triggers') db.exec(COUNTERS + TRIGGER);
    if (counters === 'meta' || counters === 'meta-users') {
      // 'meta-users', no lapse_users: the user count moves only when a user's first session
      // arrives, found by a probe of the (user_id, recency) index, whose leaf the insert writes anyway.
      const users = counters === 'meta-users';
      db.exec(`CREATE TABLE m (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO m VALUES ('sessions', 0)${users ? ", ('users', 0)" : ''};
        CREATE TRIGGER s_ai AFTER INSERT ON s BEGIN UPDATE m SET value = value + 1 WHERE key = 'sessions';
          ${users ? `UPDATE m SET value = value + 1 WHERE key = 'users' AND NEW.user_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM s WHERE user_id = NEW.user_id AND slot <> NEW.slot);` : ''} END;`);
    }
    const sub = v.subqueries ?? true;
    const slot = sub
      ? 'CASE WHEN EXISTS (SELECT 1 FROM s WHERE slot = @slot) THEN (SELECT min(coalesce(min(slot), 0), 0) - 1 FROM s) ELSE @slot END'
      : '@slot';
    const recency = sub ? '(SELECT coalesce(max(recency), 0) + 1 FROM s)' : '@recency';
    const ins = db.prepare(`INSERT INTO s (slot, id, secret_hash, user_id, data, created_at, last_accessed_at, expires_at,
        absolute_expires_at, idle_timeout, access_count, version, recency, lock_owner, lock_fence, lock_expires_at, ip, user_agent)
      VALUES (${slot}, @id, @hash, @user, '{"i":1}', @t, @t, @e, @e, 1800000, 0, 1, ${recency}, NULL, NULL, NULL, NULL, NULL)`);
    one = () => {
      const t = Date.now();
      const p: Record<string, string | number> = { slot: rand52(), id: randId(), hash: 'h'.repeat(43), user: `u${n % 97}`, t, e: t + 1_800_000 };
      if (!sub) p.recency = n + 1;
      n++;
      ins.run(p);
    };
  }
  db.transaction(() => {
    for (let i = 0; i < SEED; i++) one();
  })();
  // WAL pages per commit, checkpoints held off so the file only grows.
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.pragma('wal_autocheckpoint = 0');
  const wal = `${path}-wal`;
  const before = statSync(wal).size;
  for (let i = 0; i < 500; i++) one();
  const frames = (statSync(wal).size - before) / (db.pragma('page_size', { simple: true }) as number + 24) / 500;
  db.pragma('wal_autocheckpoint = 1000');
  db.pragma('wal_checkpoint(TRUNCATE)');
  return { db, one, frames };
}

const opened = Object.entries(VARIANTS).map(([name, v]) => ({ name, ...open(name, v) }));
const load = loadavg()[0] as number;
// In turns, the order rotated every round; ratios are the median of per-round ratios to the v2 insert.
const turns = await inTurns(
  ROUNDS,
  opened.map((o) => () => measure(o.name, () => o.one(), TURN_MS)),
  0,
);
const rows = opened.map((o, k) => {
  const rounds = (turns.runs[k] as OpsResult[]).map((r) => r.opsPerSec);
  return {
    variant: o.name,
    'frames/commit': o.frames.toFixed(2),
    'ops/s (median)': fmt((turns.results[k] as OpsResult).opsPerSec),
    'min–max': `${fmt(Math.min(...rounds))}–${fmt(Math.max(...rounds))}`,
    'vs v2 insert': (turns.ratios[k] as number).toFixed(2),
  };
});
for (const o of opened) o.db.close();
tmp.cleanup();
writeResults(process.env.COST_OUT ?? 'sqlite-create-cost', 'What a SQLite create costs, part by part (synchronous NORMAL, WAL, 20k rows)', rows, [
  `One autocommit INSERT per call, ${ROUNDS} rounds of ${TURN_MS} ms per variant (after a short warm-up), order rotated each round; ops/s is the median round, "vs v2 insert" the median of per-round ratios. frames/commit: WAL pages written per insert over 500 inserts.`,
  'Users u0..u96 (as bench/sqlite-durable.ts), random 52-bit slots and random ids: the slot and id b-trees take a random leaf each, expires_at and recency the rightmost leaf.',
  `1-minute load average before timing: ${load.toFixed(2)} (2 cores, shared with other work).`,
]);
