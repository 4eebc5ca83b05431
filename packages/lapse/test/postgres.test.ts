import pg from 'pg';
import { expect, it } from 'vitest';
import { postgres } from '../src/backends/postgres/index.js';
import { statements } from '../src/backends/postgres/statements.js';
import { schemaNames } from '../src/backends/postgres/names.js';
import { MIGRATIONS, READABLE_BY, SCHEMA_VERSION } from '../src/backends/postgres/schema.js';
import { ManualClock } from '../src/core/clock.js';
import { isLapseError, LapseError } from '../src/core/errors.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore } from '../src/core/store.js';
import { sessionRecord } from './fixtures/sqlite-record.js';
import { describePostgres, randomName, usePostgresWithAdmin } from '../../../test/helpers/postgres-server.js';

async function refusal(p: Promise<unknown>): Promise<LapseError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isLapseError(err, 'LAPSE_INVALID_OPTION'), String(err)).toBe(true);
  return err as LapseError;
}

/**
 * A batch insert function (lapse_insert_many or lapse_insert_rows) called on two new sessions,
 * as SQL text with the time left as $1 (callers put a bigint literal in its place); `ids` and
 * `users` are two comma-separated names each, `cap` the per-user cap (or NULL) of both.
 */
function insertPair(q: string, fn: 'insert_many' | 'insert_rows', ids: string, users: string, cap: string): string {
  return `SELECT * FROM ${q}.lapse_${fn}('{${ids}}', '{h,h}', '{${users}}', '{"{}","{}"}', ARRAY[$1, $1], ARRAY[$1, $1],
    ARRAY[$1 + 1000, $1 + 1000], ARRAY[$1 + 2000, $1 + 2000], '{1000,1000}', '{0,0}', '{1,1}', '{NULL,NULL}', '{NULL,NULL}',
    '{NULL,NULL}', '{NULL,NULL}', '{NULL,NULL}', ARRAY[$1, $1], '{NULL,NULL}', '{${cap},${cap}}', '{f,f}', '{NULL,NULL}')`;
}

describePostgres('postgres backend: schema, notifications, plans', () => {
  const pg0 = usePostgresWithAdmin();

  const tablesOf = async (schema: string) =>
    (await pg0.admin.query<{ t: string }>('SELECT tablename AS t FROM pg_tables WHERE schemaname = $1 ORDER BY 1', [schema])).rows.map((r) => r.t);
  const functionsOf = async (schema: string) =>
    (await pg0.admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace WHERE s.nspname = $1", [schema])).rows[0]?.n;

  it('checks its options up front', () => {
    for (const bad of [{}, { url: 'mysql://x' }, { url: 'postgres://x', pool: new pg.Pool() }, { url: 'postgres://x', schema: '' },
      { url: 'postgres://x', schema: 'x'.repeat(64) }, { url: 'postgres://x', poolSize: 0 }, { url: 'postgres://x', commandTimeout: 'soon' }]) {
      expect(() => postgres(bad as never), JSON.stringify(bad)).toThrow(LapseError);
    }
  });

  it('creates its tables on first use in public of a fresh database, and works there', async () => {
    const url = await pg0.server.createDatabase('pub');
    const b = postgres({ url, logger: silentLogger });
    try {
      const now = Date.now();
      await b.insert(sessionRecord('s1', now, { userId: 'u' }), now, {});
      expect((await b.get('s1', now))?.userId).toBe('u');
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const t = (await c.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).rows.map((r) => r.tablename);
        expect(t).toEqual(['lapse_counters', 'lapse_leases', 'lapse_schema', 'lapse_sessions', 'lapse_users']);
        expect((await c.query('SELECT application, version FROM public.lapse_schema')).rows).toEqual([{ application: 'lapse', version: SCHEMA_VERSION }]);
      } finally {
        await c.end();
      }
    } finally {
      await b.close();
    }
  });

  it('four pools migrating one schema at once all succeed, and it is made once', async () => {
    const schema = randomName('race');
    const backends = Array.from({ length: 4 }, () => postgres({ url: pg0.server.url, schema, logger: silentLogger }));
    try {
      await Promise.all(backends.map((b) => b.ready()));
      expect((await pg0.admin.query(`SELECT count(*)::int AS n FROM "${schema}".lapse_schema`)).rows[0]?.n).toBe(1);
      const now = Date.now();
      await Promise.all(backends.map((b, i) => b.insert(sessionRecord(`r${i}`, now, { userId: 'u' }), now, {})));
      expect(await backends[0]?.stats(now)).toEqual({ sessions: 4, users: 1, locked: 0 });
    } finally {
      await Promise.all(backends.map((b) => b.close()));
    }
  });

  it("refuses a schema whose lapse_ tables are not Lapse's, and changes nothing", async () => {
    const schema = randomName('foreign');
    await pg0.admin.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".lapse_sessions (x int); INSERT INTO "${schema}".lapse_sessions VALUES (7)`);
    const b = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    const store = createStore({ backend: b, sweepInterval: false, logger: silentLogger });
    try {
      const err = await refusal(b.ready());
      expect(err.message).toContain("not Lapse's");
      // Through the store it is the same clear refusal, not "backend unavailable".
      await refusal(store.create({}));
      expect(await tablesOf(schema)).toEqual(['lapse_sessions']);
      expect((await pg0.admin.query(`SELECT x FROM "${schema}".lapse_sessions`)).rows).toEqual([{ x: 7 }]);
      expect(await functionsOf(schema)).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('refuses a newer schema version and one of another application, and changes nothing', async () => {
    const schema = randomName('newer');
    const first = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    await first.ready();
    await first.close();
    // What a newer migration that changes this version's statements writes: readable by itself only.
    await pg0.admin.query(`UPDATE "${schema}".lapse_schema SET version = 99, readable_by = 99`);
    const before = { tables: await tablesOf(schema), functions: await functionsOf(schema) };
    const b = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    try {
      expect((await refusal(b.ready())).message).toMatch(new RegExp(`version 99, newer than this Lapse understands \\(${SCHEMA_VERSION}\\)`));
      expect((await pg0.admin.query(`SELECT version FROM "${schema}".lapse_schema`)).rows).toEqual([{ version: 99 }]);
      expect({ tables: await tablesOf(schema), functions: await functionsOf(schema) }).toEqual(before);
      // No marker (a schema of a Lapse from before it): refused too.
      await pg0.admin.query(`ALTER TABLE "${schema}".lapse_schema DROP COLUMN readable_by`);
      expect((await refusal(postgres({ url: pg0.server.url, schema, logger: silentLogger }).ready())).message).toContain('version 99');
      // A marker that is not a number (a hand-edited table): refused as unreadable, nothing changed.
      await pg0.admin.query(`ALTER TABLE "${schema}".lapse_schema ADD COLUMN readable_by text; UPDATE "${schema}".lapse_schema SET readable_by = 'soon'`);
      expect((await refusal(postgres({ url: pg0.server.url, schema, logger: silentLogger }).ready())).message).toContain('cannot read');
      expect((await pg0.admin.query(`SELECT version, readable_by FROM "${schema}".lapse_schema`)).rows).toEqual([{ version: 99, readable_by: 'soon' }]);
      await pg0.admin.query(`ALTER TABLE "${schema}".lapse_schema DROP COLUMN readable_by`);
      await pg0.admin.query(`UPDATE "${schema}".lapse_schema SET version = 1, application = 'other'`);
      await refusal(postgres({ url: pg0.server.url, schema, logger: silentLogger }).ready());
    } finally {
      await b.close();
    }
  });

  it('rolling deploy: a newer, compatible migration keeps this version running, and a new process of it starts on it', async () => {
    const schema = randomName('rolling');
    const n = schemaNames(schema);
    const clock = new ManualClock(Date.now());
    const running = createStore({ backend: postgres({ url: pg0.server.url, schema, logger: silentLogger }), clock });
    const fresh = createStore({ backend: postgres({ url: pg0.server.url, schema, logger: silentLogger }), clock });
    try {
      const before = await running.create({ userId: 'ada', data: { n: 1 } });
      expect((await pg0.admin.query(`SELECT version, readable_by FROM ${n.q}.lapse_schema`)).rows).toEqual([{ version: SCHEMA_VERSION, readable_by: READABLE_BY }]);
      // A newer Lapse migrates while this one runs: an additive change that says this version may go on using it.
      await pg0.admin.query(`BEGIN; CREATE TABLE ${n.q}.lapse_future (k text PRIMARY KEY);
        CREATE FUNCTION ${n.q}.lapse_future_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';
        UPDATE ${n.q}.lapse_schema SET version = ${SCHEMA_VERSION + 1}, readable_by = ${SCHEMA_VERSION}; COMMIT`);
      expect((await running.validate(before.token))?.data).toEqual({ n: 1 });
      await running.update(before.session.id, { n: 2 });
      // A process of this version starting now (a node not yet upgraded) uses it as it is.
      expect((await fresh.validate(before.token))?.data).toEqual({ n: 2 });
      const after = await fresh.create({ userId: 'bob' });
      expect((await running.validate(after.token))?.userId).toBe('bob');
      expect(await fresh.stats()).toMatchObject({ sessions: 2, users: 2 });
      expect((await pg0.admin.query(`SELECT version, readable_by FROM ${n.q}.lapse_schema`)).rows).toEqual([{ version: SCHEMA_VERSION + 1, readable_by: SCHEMA_VERSION }]);
      expect(await tablesOf(schema)).toContain('lapse_future');
    } finally {
      await running.close();
      await fresh.close();
    }
  });

  it('upgrades a version 2 schema to byte-ordered ids, keeping its sessions and counts', async () => {
    const schema = randomName('v2');
    const n = schemaNames(schema);
    await pg0.admin.query(`CREATE SCHEMA ${n.q}; CREATE TABLE ${n.q}.lapse_schema (application text NOT NULL, version int NOT NULL);
      INSERT INTO ${n.q}.lapse_schema VALUES ('lapse', 2)`);
    for (const m of MIGRATIONS.slice(0, 2)) await pg0.admin.query(m(n));
    const now = Date.now();
    const old = `SELECT ${n.q}.lapse_insert($1, 'h', $2, '{}', $3::bigint, $3, $3 + 60000, $3 + 60000, 60000, 0, 1, NULL, NULL, NULL, NULL, NULL, $3, NULL, NULL, false, NULL)`;
    for (const [id, user] of [['s-1', 'al-2'], ['s1', 'alice'], ['s2', 'alice'], ['sA', 'Al'], ['s_3', 'al']]) await pg0.admin.query(old, [id, user, now]);
    const b = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    try {
      await b.ready();
      expect((await pg0.admin.query(`SELECT version FROM ${n.q}.lapse_schema`)).rows).toEqual([{ version: SCHEMA_VERSION }]);
      const collations = await pg0.admin.query<{ c: string; col: string }>(
        `SELECT c.relname || '.' || a.attname AS col, co.collname AS c FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace s ON s.oid = c.relnamespace JOIN pg_collation co ON co.oid = a.attcollation
          WHERE s.nspname = $1 AND (c.relname, a.attname) IN (('lapse_sessions', 'id'), ('lapse_users', 'user_id')) ORDER BY 1`,
        [schema],
      );
      expect(collations.rows).toEqual([{ col: 'lapse_sessions.id', c: 'C' }, { col: 'lapse_users.user_id', c: 'C' }]);
      expect(await b.scanUsers('al', null, 10, now)).toEqual([
        { userId: 'al', sessions: 1 },
        { userId: 'al-2', sessions: 1 },
        { userId: 'alice', sessions: 2 },
      ]);
      expect((await b.scan(null, 10, now)).map((r) => r.id)).toEqual(['s-1', 's1', 's2', 'sA', 's_3']);
      expect(await b.stats(now)).toEqual({ sessions: 5, users: 4, locked: 0 });
      expect((await b.get('s1', now))?.userId).toBe('alice');
    } finally {
      await b.close();
      await pg0.admin.query(`DROP SCHEMA ${n.q} CASCADE`);
    }
  });

  it('orders session and user ids by bytes in a database with a linguistic (ICU) collation', async () => {
    const name = randomName('icu');
    await pg0.admin.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`);
    const url = pg0.server.urlOf(name);
    const b = postgres({ url, logger: silentLogger });
    try {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        // The database's own order puts case after letters: 'Ac' sorts between 'ab' and 'ad'.
        const own = await c.query<{ x: string }>("SELECT x FROM unnest(ARRAY['ad', 'Ac', 'ab']) x ORDER BY x");
        expect(own.rows.map((r) => r.x)).toEqual(['ab', 'Ac', 'ad']);
      } finally {
        await c.end();
      }
      const now = Date.now();
      for (const id of ['ab', 'Ac', 'ad', 'a-d']) await b.insert(sessionRecord(id, now, { userId: id }), now, {});
      // A prefix's ids are one range of the primary key (bytes): a scan from 'a' finds 'ad' after 'ab'.
      expect((await b.scan(null, 10, now)).map((r) => r.id)).toEqual(['Ac', 'a-d', 'ab', 'ad']);
      expect((await b.scan('a', 10, now)).map((r) => r.id)).toEqual(['a-d', 'ab', 'ad']);
      expect((await b.scanUsers('a', null, 10, now)).map((u) => u.userId)).toEqual(['a-d', 'ab', 'ad']);
      expect((await b.scanUsers('a', 'ab', 10, now)).map((u) => u.userId)).toEqual(['ad']);
    } finally {
      await b.close();
    }
  });

  it('a lent pool stays open after close()', async () => {
    const pool = new pg.Pool({ connectionString: pg0.server.url, max: 2 });
    const b = postgres({ pool, schema: randomName('lent'), logger: silentLogger });
    await b.ping();
    await b.close();
    await expect(b.ping()).rejects.toThrow(/closed/);
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await pool.end();
  });

  it('a release in one process wakes a lock({ wait }) in another through LISTEN/NOTIFY, not a timer', async () => {
    const schema = randomName('notify');
    const a = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    const b = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    // The waiting store's clock never moves: its backstop timers cannot fire, only a notification can wake it.
    const clock = new ManualClock(Date.now());
    const store = createStore({ backend: a, clock, sweepInterval: false, logger: silentLogger });
    try {
      const { session } = await store.create({});
      const heard: string[] = [];
      const stop = b.onUnlock((id) => heard.push(id));
      const held = await b.lock(session.id, 'other-process', 60_000, clock.now());
      const waiting = store.lock(session.id, { wait: '30s', owner: 'waiter' });
      // Both processes listen (each opens its LISTEN connection when it starts, asynchronously:
      // a release before the waiter's LISTEN is in place would never reach it), and the lease is held.
      const channel = schemaNames(schema).unlockChannel;
      const listening = async () =>
        (await pg0.admin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = $1', [`LISTEN ${channel}`])).rows[0]?.n;
      await expect.poll(listening, { timeout: 10_000 }).toBe(2);
      await expect.poll(async () => (await b.stats(clock.now())).locked, { timeout: 10_000 }).toBe(1);
      // Give the waiter time to meet the lease and park.
      await new Promise((r) => setTimeout(r, 50));
      expect(await b.unlock(session.id, held.fence, clock.now())).toBe(true);
      const lease = await waiting;
      expect(lease.owner).toBe('waiter');
      expect(lease.fence).toBeGreaterThan(held.fence);
      await expect.poll(() => heard, { timeout: 10_000 }).toEqual([session.id]);
      stop();
    } finally {
      await store.close();
      await b.close();
    }
  });

  it('group commit: calls issued together go as one statement and one transaction, each with its own answer', async () => {
    const pool = new pg.Pool({ connectionString: pg0.server.url, max: 4 });
    const sent: string[] = [];
    const query = pool.query.bind(pool) as (...a: unknown[]) => unknown;
    pool.query = ((...a: unknown[]) => {
      sent.push((a[0] as { name?: string }).name?.replace(/^lapse_[0-9a-f]+_/, '') ?? 'text');
      return query(...a);
    }) as typeof pool.query;
    const schema = randomName('group');
    const q = `"${schema}"`;
    const b = postgres({ pool, schema, logger: silentLogger });
    const xmins = async (ids: string[]) =>
      (await pg0.admin.query<{ x: string }>(`SELECT DISTINCT xmin::text AS x FROM ${q}.lapse_sessions WHERE id = ANY ($1)`, [ids])).rows.length;
    const settle = <T>(ps: Promise<T>[]) => Promise.all(ps.map((p) => p.then((v) => ({ ok: true as const, v }), (e: unknown) => ({ ok: false as const, e }))));
    try {
      const now = Date.now();
      await b.insert(sessionRecord('taken', now), now, {});
      const ids = Array.from({ length: 20 }, (_, i) => `g${String(i).padStart(2, '0')}`);
      sent.length = 0;
      // Twenty inserts in one tick, one of them on an id in use: that one alone is refused.
      const created = await settle([...ids, 'taken'].map((id, i) => b.insert(sessionRecord(id, now, { userId: `u${i % 3}` }), now, { maxSessionsPerUser: 10 })));
      expect(sent).toEqual(['insert_rows']);
      expect(created.slice(0, 20).every((c) => c.ok)).toBe(true);
      // Each answer is the row as stored, with nothing ended.
      const first = created[1] as { ok: true; v: { record: { id: string; userId: string | null; data: string; version: number }; ended: unknown[] } };
      expect(first.v.ended).toEqual([]);
      expect(first.v.record).toMatchObject({ id: 'g01', userId: 'u1', version: 1 });
      expect(first.v.record).toEqual(await b.get('g01', now));
      const dup = created[20] as { ok: false; e: unknown };
      expect(isLapseError(dup.e, 'LAPSE_INVALID_INPUT'), String(dup.e)).toBe(true);
      // Three logins of one user in one tick over a cap of 2: the third ends the first, and says so.
      sent.length = 0;
      const capped = await Promise.all(['c1', 'c2', 'c3'].map((id) => b.insert(sessionRecord(id, now, { userId: 'capped' }), now, { maxSessionsPerUser: 2 })));
      expect(sent).toEqual(['insert_rows']);
      expect(capped.map((c) => c.ended)).toEqual([[], [], [{ id: 'c1', userId: 'capped', reason: 'evicted' }]]);
      expect((await b.listUser('capped', now)).map((r) => r.id).sort()).toEqual(['c2', 'c3']);
      // One statement is one transaction (each insert in a subtransaction of it, so the rows' xmin differ).
      expect((await b.stats(now)).sessions).toBe(23);

      // Plain creates (new ids, each user within its cap, here reaching it exactly): set-wise, no
      // subtransaction, so one xmin for all of them; each caller gets its own record, and the
      // counts move by exactly what went in.
      const plain = Array.from({ length: 12 }, (_, i) => `p${String(i).padStart(2, '0')}`);
      const users = (await b.stats(now)).users;
      sent.length = 0;
      const made = await Promise.all(
        plain.map((id, i) => b.insert(sessionRecord(id, now, { userId: i < 10 ? `pu${i % 4}` : null }), now, { maxSessionsPerUser: 3 })),
      );
      expect(sent).toEqual(['insert_rows']);
      expect(made.map((m) => m.ended)).toEqual(plain.map(() => []));
      for (const [i, m] of made.entries()) expect(m.record, plain[i]).toEqual(await b.get(plain[i] as string, now));
      expect(made[5]?.record).toMatchObject({ id: 'p05', userId: 'pu1', version: 1 });
      expect(await xmins(plain)).toBe(1);
      expect(await b.stats(now)).toMatchObject({ sessions: 35, users: users + 4 });
      expect((await b.listUser('pu1', now)).map((r) => r.id).sort()).toEqual(['p01', 'p05', 'p09']);
      // One more for a user at its cap: its least recently used session goes, and the caller is told.
      const over = await b.insert(sessionRecord('p12', now, { userId: 'pu1' }), now, { maxSessionsPerUser: 3 });
      expect(over.ended).toEqual([{ id: 'p01', userId: 'pu1', reason: 'evicted' }]);
      expect((await b.listUser('pu1', now)).map((r) => r.id).sort()).toEqual(['p05', 'p09', 'p12']);
      expect((await b.stats(now)).sessions).toBe(35);
      // The same id twice in one batch is not plain: both apply in call order, the second refused.
      const twice = await settle([b.insert(sessionRecord('tw', now), now, {}), b.insert(sessionRecord('tw', now, { userId: 'x' }), now, {})]);
      expect(twice.map((t) => t.ok)).toEqual([true, false]);
      expect((await b.get('tw', now))?.userId).toBeNull();
      expect((await b.stats(now)).sessions).toBe(36);

      // Updates in one tick: a stale version, a missing session, a leased one and two writes of one session among them.
      const lease = await b.lock('g05', 'holder', 60_000, now);
      sent.length = 0;
      const updated = await settle([
        ...ids.map((id, i) => b.update(id, JSON.stringify({ i }), now, i === 3 ? { expectedVersion: 7 } : {})),
        b.update('nope', '{}', now, {}),
        b.update('g09', '{"i":"second"}', now, {}),
        b.update('g05', '{"i":"holder"}', now, { fence: lease.fence }),
      ]);
      expect(sent).toEqual(['update_rows']);
      const codeOf = (k: number) => {
        const u = updated[k] as { ok: boolean; e?: unknown };
        return u.ok ? 'ok' : (u.e as LapseError).code;
      };
      expect(codeOf(3)).toBe('LAPSE_VERSION_CONFLICT');
      expect(codeOf(5)).toBe('LAPSE_LOCKED');
      expect(codeOf(20)).toBe('LAPSE_NOT_FOUND');
      expect([codeOf(21), codeOf(22)]).toEqual(['ok', 'ok']);
      // An answer is the record as written: the data sent, the next version, the rest as stored.
      const one = (updated[1] as { ok: true; v: unknown }).v;
      expect(one).toMatchObject({ id: 'g01', data: '{"i":1}', version: 2, userId: 'u1' });
      expect(one).toEqual(await b.get('g01', now));
      expect(updated.filter((u) => u.ok)).toHaveLength(20);
      // Refused items wrote nothing; the rest are one transaction; a session written twice got both, in call order.
      expect((await b.get('g03', now))?.version).toBe(1);
      expect((await b.get('g05', now))?.data).toBe('{"i":"holder"}');
      expect(await b.get('g09', now)).toMatchObject({ data: '{"i":"second"}', version: 3 });
      expect(await xmins(ids.filter((id) => id !== 'g03'))).toBe(1);

      // Reads in one tick: one statement; missing and expired sessions are null for their caller only.
      sent.length = 0;
      const later = now + 3_600_000; // every session here is idle-expired by then
      const got = await Promise.all([b.get('g01', now), b.get('nope', now), b.get('g01', now), b.get('g02', later)]);
      expect(sent).toEqual(['get_many']);
      expect(got.map((r) => r?.data ?? null)).toEqual(['{"i":1}', null, '{"i":1}', null]);
    } finally {
      await b.close();
      await pool.end();
    }
  });

  it('group commit sends each column as array literal text: awkward strings and NULLs come back exactly', async () => {
    const b = postgres({ url: pg0.server.url, schema: randomName('literal'), logger: silentLogger });
    const awkward = ['', 'NULL', 'null', ' a b ', 'a,b', '{x}', '"q"', 'back\\slash', '\\"', 'tab\there', 'é ✓ 𝄞', "it's"];
    try {
      const now = Date.now();
      // One tick: one insert_many, then one update_rows, then one get_many, all through the literals.
      await Promise.all(awkward.map((v, i) => b.insert(sessionRecord(`a${i}`, now, { userId: v === '' ? null : v, data: JSON.stringify({ v }) }), now, {})));
      const got = await Promise.all(awkward.map((_, i) => b.get(`a${i}`, now)));
      expect(got.map((r) => r?.userId ?? null)).toEqual(awkward.map((v) => (v === '' ? null : v)));
      expect(got.map((r) => r?.data)).toEqual(awkward.map((v) => JSON.stringify({ v })));
      await Promise.all(awkward.map((v, i) => b.update(`a${i}`, JSON.stringify({ w: v }), now, {})));
      const after = await Promise.all(awkward.map((_, i) => b.get(`a${i}`, now)));
      expect(after.map((r) => r?.data)).toEqual(awkward.map((v) => JSON.stringify({ w: v })));
      expect(after.every((r) => r?.version === 2)).toBe(true);
    } finally {
      await b.close();
    }
  });

  /** A third connection that holds one session row (FOR UPDATE) until release(); end() lets go of it in any case. */
  const holdRow = async (q: string, id: string) => {
    const c = new pg.Client({ connectionString: pg0.server.url });
    await c.connect();
    await c.query('BEGIN');
    await c.query(`SELECT 1 FROM ${q}.lapse_sessions WHERE id = $1 FOR UPDATE`, [id]);
    return {
      release: () => c.query('COMMIT'),
      end: async () => {
        await c.query('ROLLBACK').catch(() => {});
        await c.end();
      },
    };
  };

  it('a session row held by another transaction holds up only its own update, not the batch', async () => {
    const schema = randomName('busy');
    const q = `"${schema}"`;
    const b = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    let holder: Awaited<ReturnType<typeof holdRow>> | undefined;
    try {
      const now = Date.now();
      for (const id of ['b1', 'b2', 'b3', 'b4']) await b.insert(sessionRecord(id, now), now, {});
      holder = await holdRow(q, 'b2');
      let heldDone = false;
      const held = b.update('b2', '{"late":true}', now, {}).then((r) => {
        heldDone = true;
        return r;
      });
      const others = Promise.all(['b1', 'b3', 'b4'].map((id) => b.update(id, '{"x":1}', now, {})));
      // The others commit while b2's row is still held: the batch skipped it instead of waiting.
      const first = await Promise.race([others, new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), 5_000))]);
      expect(first).not.toBe('stuck');
      expect((first as { version: number }[]).map((r) => r.version)).toEqual([2, 2, 2]);
      expect(heldDone).toBe(false);
      await holder.release();
      // b2's own update ran again on its own, waited for the row, and wrote once.
      expect(await held).toMatchObject({ id: 'b2', version: 2, data: '{"late":true}' });
    } finally {
      await holder?.end();
      await b.close();
    }
  });

  it('an id another transaction inserts while a batch of creates runs is refused alone, counts exact', async () => {
    const schema = randomName('race');
    const q = `"${schema}"`;
    const b = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    const c = new pg.Client({ connectionString: pg0.server.url });
    try {
      const now = Date.now();
      await b.insert(sessionRecord('seed', now), now, {});
      await c.connect();
      // The other transaction inserts 'race' and keeps it uncommitted: the batch does not see it
      // when it looks, then waits on it at its insert, and after the commit finds it there.
      await c.query('BEGIN');
      await c.query(`SELECT ${q}.lapse_insert('race', 'h', 'ru', '{}', $1::bigint, $1, $1 + 60000, $1 + 120000, 60000, 0, 1,
        NULL, NULL, NULL, NULL, NULL, $1, NULL, NULL, false, NULL)`, [now]);
      const batch = Promise.allSettled(['r1', 'race', 'r2'].map((id) => b.insert(sessionRecord(id, now, { userId: 'ru' }), now, {})));
      const waiting = async () =>
        (await pg0.admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")).rows[0]?.n ?? 0;
      for (let i = 0; i < 200 && (await waiting()) < 1; i++) await new Promise((r) => setTimeout(r, 10));
      expect(await waiting()).toBe(1);
      await c.query('COMMIT');
      const out = await batch;
      expect(out.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(isLapseError((out[1] as PromiseRejectedResult).reason, 'LAPSE_INVALID_INPUT')).toBe(true);
      // The one that came first is the one stored; the others are in; every count is exact.
      expect((await b.get('race', now))?.secretHash).toBe('h');
      expect((await b.listUser('ru', now)).map((r) => r.id).sort()).toEqual(['r1', 'r2', 'race']);
      expect(await b.stats(now)).toMatchObject({ sessions: 4, users: 1 });
      expect(await b.scanUsers('', null, 10, now)).toEqual([{ userId: 'ru', sessions: 3 }]);
    } finally {
      await c.end().catch(() => {});
      await b.close();
    }
  });

  it('a batch of updates and "log out everywhere" take rows in one order: no deadlock', async () => {
    const schema = randomName('order');
    const q = `"${schema}"`;
    const a = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    const b = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    const deadlocks = async () =>
      Number((await pg0.admin.query<{ n: string }>('SELECT deadlocks::text AS n FROM pg_stat_database WHERE datname = current_database()')).rows[0]?.n);
    const waiting = async () =>
      (await pg0.admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")).rows[0]?.n ?? 0;
    const until = async (n: number) => {
      for (let i = 0; i < 200 && (await waiting()) < n; i++) await new Promise((r) => setTimeout(r, 10));
      expect(await waiting()).toBe(n);
    };
    const before = await deadlocks();
    let holder: Awaited<ReturnType<typeof holdRow>> | undefined;
    try {
      const now = Date.now();
      // Inserted in reverse id order: the user's rows in recency (and physical) order are k12 … k01.
      const ids = Array.from({ length: 12 }, (_, i) => `k${String(12 - i).padStart(2, '0')}`);
      for (const id of ids) await a.insert(sessionRecord(id, now, { userId: 'everywhere' }), now, {});
      // Force the interleaving: a third transaction holds k06; the batch (ids in order) takes
      // k01…k05 and waits for it; then "log out everywhere" starts while the batch waits.
      holder = await holdRow(q, 'k06');
      const batch = Promise.allSettled(ids.map((id) => a.update(id, '{"x":1}', now, {})));
      await until(1);
      const removed = b.removeUser('everywhere', now);
      await until(2);
      await holder.release();
      const [updates, ended] = await Promise.all([batch, removed]);
      expect(updates.every((u) => u.status === 'fulfilled')).toBe(true);
      expect(ended).toHaveLength(12);
    } finally {
      await holder?.end();
      await a.close();
      await b.close();
    }
    // The server counts a deadlock when a backend flushes its statistics (at the latest when it exits).
    let after = before;
    for (let i = 0; i < 20 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await deadlocks();
    }
    expect(after - before).toBe(0);
  });

  it('a plan a connection made while the table was near empty stays index-backed as the table grows', async () => {
    const schema = randomName('plans');
    const q = `"${schema}"`;
    const b = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    const c = new pg.Client({ connectionString: pg0.server.url });
    try {
      const now = Date.now();
      await b.insert(sessionRecord('first', now), now, {});
      // Lapse's own pool plans every statement with sequential scans off.
      expect((await b.pool.query('SHOW enable_seqscan')).rows).toEqual([{ enable_seqscan: 'off' }]);
      await c.connect();
      const notices: string[] = [];
      c.on('notice', (n) => notices.push(n.message ?? ''));
      let k = 0;
      const batch = () => c.query(insertPair(q, 'insert_rows', `p${k++},p${k++}`, 'ua,ub', 'NULL').replaceAll('$1', `${now}::bigint`));
      const update = () => c.query(`SELECT * FROM ${q}.lapse_update_rows('{p0,p1}', '{"{}","{}"}', ARRAY[$1, $1]::bigint[], '{NULL,NULL}', '{NULL,NULL}')`, [now]);
      // What autovacuum does at 50 rows: an ANALYZE of a one-page table, where a sequential scan
      // is the cheapest plan; then enough calls on this connection for its plans to be kept.
      await batch();
      await pg0.admin.query(`ANALYZE ${q}.lapse_sessions`);
      for (let i = 0; i < 8; i++) {
        await batch();
        await update();
      }
      // The table grows (no ANALYZE: nothing makes the connection plan again).
      await pg0.admin.query(`INSERT INTO ${q}.lapse_sessions SELECT 'bulk' || g, 'h', NULL, '{}', 0, 0, $1, $1, 1, 0, 1,
        nextval('${q}.lapse_recency'), NULL, NULL, NULL, NULL, NULL FROM generate_series(1, 20000) g`, [now + 60_000]);
      await c.query(`LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;
        SET client_min_messages = log`);
      notices.length = 0;
      await batch();
      await update();
      const text = notices.join('\n');
      expect(text).toContain('lapse_sessions_pkey');
      expect(text).not.toMatch(/Seq Scan on lapse_sessions/);
    } finally {
      await c.end().catch(() => {});
      await b.close();
    }
  });

  it('every hot statement, and every statement inside the functions, is index-backed', async () => {
    const schema = randomName('plans');
    const b = postgres({ url: pg0.server.url, schema, logger: silentLogger });
    const now = Date.now();
    try {
      // Enough rows, spread over users, expiry and leases, for the planner to prefer indexes.
      await b.ready();
      const q = `"${schema}"`;
      await pg0.admin.query(`INSERT INTO ${q}.lapse_sessions SELECT 'id' || g, 'h', 'user-' || (g % 500), '{}', t, t,
          t + 3600000 + g, t + 7200000, 3600000, 0, 1, g, CASE WHEN g % 100 = 0 THEN 'o' END,
          CASE WHEN g % 100 = 0 THEN g END, CASE WHEN g % 100 = 0 THEN t + 60000 END, NULL, NULL
        FROM generate_series(1, 20000) g, (SELECT $1::bigint AS t) n`, [now]);
      await pg0.admin.query(`SELECT setval('${q}.lapse_recency', 20001)`);
      await pg0.admin.query(`UPDATE ${q}.lapse_counters SET sessions = 20000, users = 500 WHERE shard = 0;
        INSERT INTO ${q}.lapse_users SELECT 'user-' || g, 40 FROM generate_series(0, 499) g;
        ANALYZE ${q}.lapse_sessions; ANALYZE ${q}.lapse_users`);

      const st = statements(schemaNames(schema));
      const plain: [string, string, unknown[], string][] = [
        ['get', st.get.text, ['id42'], 'lapse_sessions_pkey'],
        ['getMany', st.getMany.text, ['{id42,id43,id7}'], 'lapse_sessions_pkey'],
        ['touch', st.touch.text, ['id42', now, 1, now], 'lapse_sessions_pkey'],
        ['listUser', st.listUser.text, ['user-7', now], 'lapse_sessions_user'],
        ['scan', st.scan.text, ['id5', now, 100], 'lapse_sessions_pkey'],
        ['scanUsers', st.scanUsers.text, ['user-4', 'user-41', 20], 'lapse_users_pkey'],
        ['count', st.count.text, [now + 3_600_000 + 10], 'lapse_sessions_expires'],
        ['stats', st.stats.text, [now], 'lapse_sessions_lock'],
      ];
      const plans: Record<string, string> = {};
      for (const [name, text, values, index] of plain) {
        await pg0.admin.query(`PREPARE plan_${name} AS ${text}`);
        const args = values.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ');
        const rows = (await pg0.admin.query(`EXPLAIN EXECUTE plan_${name}(${args})`)).rows as { 'QUERY PLAN': string }[];
        await pg0.admin.query(`DEALLOCATE plan_${name}`);
        plans[name] = rows.map((r) => r['QUERY PLAN']).join('\n');
        expect(plans[name], name).toContain(index);
        expect(plans[name], name).not.toMatch(/Seq Scan on lapse_sessions/);
      }
      // Prefix scans walk a primary key in order: no sort, no scan of the whole table.
      for (const name of ['scan', 'scanUsers']) expect(plans[name], name).not.toMatch(/Sort|Seq Scan/);

      // The functions' own statements, as auto_explain reports them to this session.
      const c = new pg.Client({ connectionString: pg0.server.url });
      await c.connect();
      const notices: string[] = [];
      c.on('notice', (n) => notices.push(n.message ?? ''));
      try {
        await c.query(`LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;
          SET client_min_messages = log`);
        const nested = async (what: string, sql: string, values: unknown[], indexes: string[]) => {
          notices.length = 0;
          await c.query(sql.replaceAll('$1', `${values[0] as number}::bigint`));
          const text = notices.join('\n');
          for (const index of indexes) expect(text, `${what} uses ${index}`).toContain(index);
          expect(text, what).not.toMatch(/Seq Scan on lapse_sessions/);
        };
        const call = (fn: string) => `SELECT ${q}.lapse_${fn}`;
        // Global cap reached with nothing expired: the LRU goes (expiry index, then recency index).
        await nested('insert at the caps', `${call('insert')}('new1', 'h', 'user-3', '{}', $1, $1, $1 + 1000, $1 + 2000, 1000, 0, 1,
          NULL, NULL, NULL, NULL, NULL, $1, 19999, 40, false, NULL)`, [now], ['lapse_sessions_pkey', 'lapse_sessions_user', 'lapse_sessions_expires', 'lapse_sessions_recency']);
        await nested('update', `${call('update')}('id43', '{"a":1}', $1, NULL, NULL)`, [now], ['lapse_sessions_pkey']);
        await nested('update_rows', `SELECT * FROM ${q}.lapse_update_rows('{id47,id48}', '{"{}","{}"}', ARRAY[$1, $1], '{NULL,NULL}', '{NULL,NULL}')`, [now], ['lapse_sessions_pkey']);
        await nested('insert_many', insertPair(q, 'insert_many', 'new2,new3', 'user-4,user-5', '40'), [now], ['lapse_sessions_pkey', 'lapse_sessions_user']);
        // Plain creates (set-wise), also with users within their cap; then users at their cap
        // (user-6 and user-7 hold two sessions each by then): the item-by-item path.
        const batches: [string, string, string][] = [
          ['insert_rows', 'NULL', 'new4,new5'],
          ['insert_rows within a per-user cap', '40', 'new6,new7'],
          ['insert_rows at a per-user cap', '2', 'new8,new9'],
        ];
        for (const [what, cap, ids] of batches) {
          const indexes = cap === '2' ? ['lapse_sessions_pkey', 'lapse_sessions_user'] : ['lapse_sessions_pkey', 'lapse_users_pkey'];
          await nested(what, insertPair(q, 'insert_rows', ids, 'user-6,user-7', cap), [now], indexes);
        }
        await nested('lock', `${call('lock')}('id44', 'me', 1000, $1)`, [now], ['lapse_sessions_pkey']);
        await nested('rotate', `${call('rotate')}('id45', 'id45b', 'h2', $1, NULL)`, [now], ['lapse_sessions_pkey']);
        await nested('remove', `${call('remove')}('id46', $1, NULL, false)`, [now], ['lapse_sessions_pkey']);
        await nested('removeUser', `${call('remove_user')}('user-9', $1, NULL)`, [now], ['lapse_sessions_user']);
        await nested('sweep', `${call('sweep')}($1, 500)`, [now + 3_600_000 + 300], ['lapse_sessions_expires']);
      } finally {
        await c.end();
      }
    } finally {
      await b.close();
    }
  });
});
