import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SqliteBackend, sqlite } from '../src/backends/sqlite/backend.js';
import { SQL, type StatementName } from '../src/backends/sqlite/statements.js';
import { tempDir } from '../../../test/helpers/tmp.js';

/**
 * The hot-path queries must each use their index, with or without planner statistics:
 * this explains the very statements the backend prepares.
 */
let tmp: ReturnType<typeof tempDir>;
let b: SqliteBackend;

beforeAll(() => {
  tmp = tempDir('lapse-sqlite-plan-');
  b = sqlite({ path: join(tmp.dir, 'plan.db') });
  // Enough rows, users and leases for ANALYZE to have something to say.
  const insert = b.db.transaction(() => {
    for (let i = 0; i < 3_000; i++) {
      const t = i * 7;
      b.insert(
        {
          id: `s${i}`,
          secretHash: 'h',
          userId: i % 4 === 0 ? null : `u${i % 300}`,
          data: '{}',
          createdAt: t,
          lastAccessedAt: t,
          expiresAt: t + 5_000,
          absoluteExpiresAt: t + 50_000,
          idleTimeout: 5_000,
          accessCount: 0,
          version: 1,
          lock: i % 50 === 0 ? { owner: 'o', fence: i, expiresAt: t + 100 } : null,
          ip: null,
          userAgent: null,
        },
        t,
        {},
      );
    }
  });
  insert();
});

afterAll(async () => {
  await b.close();
  tmp.cleanup();
});

/** EXPLAIN QUERY PLAN of a named statement, with placeholder values bound. */
function plan(name: StatementName): string[] {
  const sql = SQL[name];
  const stmt = b.db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
  const named = [...sql.matchAll(/@(\w+)/g)].map((m) => m[1] as string);
  const positional = (sql.match(/\?/g) ?? []).length;
  const rows = (named.length > 0 ? stmt.all(Object.fromEntries(named.map((n) => [n, 1]))) : stmt.all(...Array(positional).fill(1))) as {
    detail: string;
  }[];
  return rows.map((r) => r.detail);
}

/** Asserts every step on lapse_sessions is an index search or an index-ordered walk, never a table scan or a sort. */
function expectIndexed(name: StatementName, index: string): void {
  const steps = plan(name);
  const text = steps.join(' | ');
  expect(text, name).toContain(index);
  for (const step of steps) {
    expect(step, `${name}: ${text}`).not.toMatch(/^SCAN lapse_sessions$/);
    expect(step, `${name}: ${text}`).not.toContain('TEMP B-TREE');
  }
}

const EXPECTED: [StatementName, string][] = [
  ['sweep', 'USING COVERING INDEX lapse_sessions_expires (expires_at<?)'],
  ['due', 'USING COVERING INDEX lapse_sessions_expires (expires_at<?)'],
  ['soonest', 'USING INDEX lapse_sessions_expires'],
  ['lru', 'USING INDEX lapse_sessions_recency'],
  ['userLru', 'USING INDEX lapse_sessions_user (user_id=?)'],
  ['listUser', 'USING INDEX lapse_sessions_user (user_id=?)'],
  ['removeUser', 'USING INDEX lapse_sessions_user (user_id=?)'],
  ['locked', 'USING COVERING INDEX lapse_sessions_lock (lock_expires_at>?)'],
  ['get', '(id=?)'],
  ['read', 'USING INTEGER PRIMARY KEY (rowid=?)'],
  ['readById', '(id=?)'],
  ['updateData', '(id=?)'],
  ['insert', 'USING INTEGER PRIMARY KEY (rowid=?)'],
  ['rotate', 'USING INTEGER PRIMARY KEY (rowid=?)'],
  ['touch', 'USING COVERING INDEX lapse_sessions_recency'],
  ['scan', '(id>?)'],
];

describe('sqlite query plans', () => {
  for (const [name, index] of EXPECTED) {
    it(`${name} uses ${index}`, () => expectIndexed(name, index));
  }

  it('still uses the same indexes once the planner has statistics', () => {
    b.db.exec('ANALYZE');
    for (const [name, index] of EXPECTED) expectIndexed(name, index);
  });

  it('the per-user and LRU walks are index-ordered, not sorted', () => {
    // ORDER BY recency comes from the index itself: no "USE TEMP B-TREE FOR ORDER BY".
    expect(plan('listUser').join(' ')).not.toContain('ORDER BY');
    expect(plan('lru').join(' ')).toBe('SCAN lapse_sessions USING INDEX lapse_sessions_recency');
  });
});
