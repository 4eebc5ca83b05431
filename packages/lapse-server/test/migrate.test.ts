/**
 * Live migration: sessions written over real HTTP by express-session with the real
 * connect-redis and better-sqlite3-session-store, copied by `lapse import --from`, then the
 * same cookies validated through express-session + LapseStore. Reruns change nothing; an
 * interrupted run resumes from its checkpoint.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import pg from 'pg';
import RedisStore from 'connect-redis';
import session, { type SessionData, type Store } from 'express-session';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sqlite } from 'lapse/sqlite';
import { betterSqliteSource } from '../src/cli/import-sources/better-sqlite3-session-store.js';
import { migrate } from '../src/cli/import-sources/migrate.js';
import { runCli } from '../src/cli/program.js';
import { LapseStore } from 'lapse/express-session';
import { userField } from 'lapse/internal';
import { silentLogger } from 'lapse/internal';
import { createStore, type SessionStore } from 'lapse/internal';
import { describePostgres, type PostgresServer, startPostgres } from '../../../test/helpers/postgres-server.js';
import { describeRedis, randomPrefix, type RedisServer, startRedis } from '../../../test/helpers/redis-server.js';
import { expressSessionApp, type RunningApp, sessionCookie, sidOf } from '../../../test/helpers/session-apps.js';
import { tempDir } from '../../../test/helpers/tmp.js';

const require = createRequire(import.meta.url);
type PgStoreClass = new (o: { pool: pg.Pool; createTableIfMissing: boolean; pruneSessionInterval: false }) => Store & { close(): Promise<void> };
const connectPgSimple = require('connect-pg-simple') as (s: typeof session) => PgStoreClass;
const SqliteStore = (require('better-sqlite3-session-store') as (s: typeof session) => new (o: { client: Database.Database }) => Store)(session);

const closers: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function cli(args: string[], dataDir: string) {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    stdin: Readable.from([]),
    env: { LAPSE_DATA_DIR: dataDir },
  });
  return { code, out, err };
}

async function loginAll(app: RunningApp, users: string[]): Promise<string[]> {
  const cookies: string[] = [];
  for (const u of users) {
    const res = await fetch(`${app.url}/login?user=${u}`, { method: 'POST' });
    await res.text();
    const cookie = sessionCookie(res, 'connect.sid');
    const set = await fetch(`${app.url}/set?k=cart&v=${u}-cart`, { method: 'POST', headers: { cookie } });
    await set.text();
    cookies.push(cookie);
  }
  return cookies;
}

async function whoami(app: RunningApp, cookie: string): Promise<{ user: string | null; data: Record<string, unknown> }> {
  return (await (await fetch(`${app.url}/me`, { headers: { cookie } })).json()) as { user: string | null; data: Record<string, unknown> };
}

/** Opens the Lapse SQLite file the CLI wrote and serves it through express-session + LapseStore. */
async function lapseApp(dbPath: string): Promise<{ app: RunningApp; store: SessionStore }> {
  const store = createStore({ backend: sqlite({ path: dbPath, logger: silentLogger }), logger: silentLogger, sweepInterval: false });
  const app = await expressSessionApp(new LapseStore({ store, userId: userField('passport.user') }));
  closers.push(() => store.close(), () => app.close());
  return { app, store };
}

function counts(out: string): Record<string, number | boolean> {
  return JSON.parse(out) as Record<string, number | boolean>;
}

/** A session written straight to a store the way express-session would, with a cookie expiring in `ms`. */
function sess(user: string, ms: number): SessionData {
  const cookie = { originalMaxAge: 86_400_000, expires: new Date(Date.now() + ms), httpOnly: true, path: '/' };
  return { cookie, passport: { user } } as unknown as SessionData;
}

describeRedis('lapse import --from connect-redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('migrates live sessions (users, data, expiry) so the same cookies keep working; a rerun changes nothing', async () => {
    const tmp = tempDir();
    closers.push(tmp.cleanup);
    const prefix = `sess:${randomPrefix()}`;
    const client = new Redis(server.url);
    closers.push(() => client.quit());
    const peer = await expressSessionApp(new RedisStore({ client, prefix }));
    closers.push(() => peer.close());
    const cookies = await loginAll(peer, ['ann', 'ben', 'cat']);
    // One an older deployment left without a TTL although its cookie has expired: skipped.
    const old = sess('old', -60_000) as unknown as { cookie: { expires: Date } };
    await client.set(`${prefix}stale-one`, JSON.stringify(old));
    await client.set(`${prefix}not-json`, '{oops');

    const dbPath = join(tmp.dir, 'data', 'lapse.db');
    const args = ['import', '--from', 'connect-redis', server.url, '--prefix', prefix, '--user-field', 'passport.user', '--json'];
    const first = await cli(args, join(tmp.dir, 'data'));
    expect(first.err).not.toMatch(/lapse:/);
    expect(first.code).toBe(0);
    expect(counts(first.out)).toEqual({ scanned: 5, imported: 3, existing: 0, expired: 1, invalid: 1, done: true });

    const { app, store } = await lapseApp(dbPath);
    const before = await Promise.all(cookies.map((c) => store.get(sidOf(c))));
    for (const [i, u] of ['ann', 'ben', 'cat'].entries()) {
      const seen = await whoami(app, cookies[i] as string);
      expect(seen.user).toBe(u);
      expect(seen.data.cart).toBe(`${u}-cart`);
      expect((await store.listUser(u)).map((s) => s.id)).toEqual([sidOf(cookies[i] as string)]);
    }
    // The migrated session ends when connect-redis would have ended it (its TTL), or at the
    // absolute cap counted from the migration, whichever comes first; never later.
    const ttl = await client.pttl(`${prefix}${sidOf(cookies[0] as string)}`);
    const b = before[0];
    expect(b?.lastAccessedAt).toBeLessThanOrEqual(Date.now());
    expect(Math.abs((b?.lastAccessedAt ?? 0) + 86_400_000 - (Date.now() + ttl))).toBeLessThan(5_000);
    expect(b?.expiresAt).toBe(Math.min((b?.lastAccessedAt ?? 0) + 86_400_000, b?.absoluteExpiresAt ?? 0));

    await store.close();
    const again = await cli(args, join(tmp.dir, 'data'));
    expect(counts(again.out)).toEqual({ scanned: 5, imported: 0, existing: 3, expired: 1, invalid: 1, done: true });
    const check = createStore({ backend: sqlite({ path: dbPath, logger: silentLogger }), logger: silentLogger, sweepInterval: false });
    closers.push(() => check.close());
    for (const c of cookies) expect((await check.get(sidOf(c)))?.data).toMatchObject({ cart: expect.any(String) });
    expect(await check.size()).toBe(3);
  });
});

describe('lapse import --from better-sqlite3-session-store', () => {
  it('migrates the sessions an express-session app wrote, then serves the same cookies', async () => {
    const tmp = tempDir();
    closers.push(tmp.cleanup);
    const peerFile = join(tmp.dir, 'peer.db');
    const db = new Database(peerFile);
    closers.push(() => db.close());
    const peer = await expressSessionApp(new SqliteStore({ client: db }));
    closers.push(() => peer.close());
    const cookies = await loginAll(peer, ['dan', 'eve']);

    const args = ['import', '--from', 'better-sqlite3-session-store', peerFile, '--user-field', 'passport.user', '--json'];
    const first = await cli(args, join(tmp.dir, 'data'));
    expect(first.code).toBe(0);
    expect(counts(first.out)).toMatchObject({ scanned: 2, imported: 2, existing: 0, done: true });
    expect(counts((await cli(args, join(tmp.dir, 'data'))).out)).toMatchObject({ imported: 0, existing: 2 });

    const { app, store } = await lapseApp(join(tmp.dir, 'data', 'lapse.db'));
    expect((await whoami(app, cookies[0] as string)).user).toBe('dan');
    expect((await whoami(app, cookies[1] as string)).data.cart).toBe('eve-cart');
    expect(await store.revokeUser('eve')).toBe(1);
    expect((await whoami(app, cookies[1] as string)).user).toBeNull();
  });

  it('an interrupted run resumes from its checkpoint; expired sessions are skipped', async () => {
    const tmp = tempDir();
    closers.push(tmp.cleanup);
    const peerFile = join(tmp.dir, 'peer.db');
    const db = new Database(peerFile);
    closers.push(() => db.close());
    const peer = new SqliteStore({ client: db });
    const set = (id: string, s: SessionData) => new Promise<void>((r, j) => peer.set(id, s, (e) => (e ? j(e) : r())));
    for (let i = 0; i < 1200; i++) await set(`s${String(i).padStart(5, '0')}`, sess(`u${i % 7}`, 3_600_000));
    await set('z-expired', sess('gone', -1000));

    const store = createStore({ backend: sqlite({ path: join(tmp.dir, 'lapse.db'), logger: silentLogger }), logger: silentLogger, sweepInterval: false });
    closers.push(() => store.close());
    const checkpoint = join(tmp.dir, 'import.checkpoint');
    const opts = { idleTimeout: 1_800_000, absoluteTimeout: 43_200_000, userId: userField('passport.user'), checkpoint };

    const stop = new AbortController();
    const source1 = betterSqliteSource(peerFile);
    const first = await migrate(source1, store, { ...opts, signal: stop.signal, onProgress: () => stop.abort() });
    await source1.close();
    expect(first.done).toBe(false);
    expect(first.counts.imported).toBe(500);
    expect(existsSync(checkpoint)).toBe(true);
    expect(await store.size()).toBe(500);

    const source2 = betterSqliteSource(peerFile);
    const second = await migrate(source2, store, opts);
    await source2.close();
    expect(second.done).toBe(true);
    // Resumed after the first page: nothing read twice, every count carried over.
    expect(second.counts).toEqual({ scanned: 1201, imported: 1200, existing: 0, expired: 1, invalid: 0 });
    expect(existsSync(checkpoint)).toBe(false);
    expect(await store.size()).toBe(1200);
    expect((await store.listUser('u3')).length).toBe(Math.ceil((1200 - 3) / 7));
  });

  it('names what it cannot read', async () => {
    const tmp = tempDir();
    closers.push(tmp.cleanup);
    const missing = await cli(['import', '--from', 'better-sqlite3-session-store', join(tmp.dir, 'nope.db')], join(tmp.dir, 'data'));
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/cannot open .*nope\.db/);
    const table = await cli(['import', '--from', 'connect-pg-simple', 'postgres://127.0.0.1/x', '--table', 'a;b'], join(tmp.dir, 'data'));
    expect(table.code).toBe(2);
    expect(table.err).toMatch(/not a table or schema name: a;b/);
    const other = await cli(['import', '--from', 'memorystore', 'x'], join(tmp.dir, 'data'));
    expect(other.err).toMatch(/--from takes one of connect-redis, better-sqlite3-session-store, connect-pg-simple/);
  });
});

describePostgres('lapse import --from connect-pg-simple', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.destroy();
  });

  it('migrates the sessions an express-session app wrote to PostgreSQL, then serves the same cookies', async () => {
    const tmp = tempDir();
    closers.push(tmp.cleanup);
    const url = await server.createDatabase('peer');
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    closers.push(() => pool.end());
    const PgStore = connectPgSimple(session);
    const pgStore = new PgStore({ pool, createTableIfMissing: true, pruneSessionInterval: false });
    closers.push(() => pgStore.close());
    const peer = await expressSessionApp(pgStore);
    closers.push(() => peer.close());
    const cookies = await loginAll(peer, ['fay', 'gus']);
    const old = { cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() - 1000), path: '/' } };
    await pool.query(`INSERT INTO "session" (sid, sess, expire) VALUES ('stale', $1, to_timestamp($2))`, [JSON.stringify(old), Date.now() / 1000 - 1]);

    const args = ['import', '--from', 'connect-pg-simple', url, '--user-field', 'passport.user', '--json'];
    const first = await cli(args, join(tmp.dir, 'data'));
    expect(first.err).not.toMatch(/lapse:/);
    expect(counts(first.out)).toEqual({ scanned: 3, imported: 2, existing: 0, expired: 1, invalid: 0, done: true });
    expect(counts((await cli(args, join(tmp.dir, 'data'))).out)).toMatchObject({ imported: 0, existing: 2 });

    const { app, store } = await lapseApp(join(tmp.dir, 'data', 'lapse.db'));
    // connect-pg-simple's expire column (whole seconds, rounded up), read back through the same
    // time zone: the same instant.
    const [row] = (await pool.query(`SELECT extract(epoch FROM expire::timestamptz) * 1000 AS ms FROM "session" WHERE sid = $1`, [sidOf(cookies[0] as string)])).rows as Array<{ ms: string }>;
    const migrated = await store.get(sidOf(cookies[0] as string));
    expect(Math.abs((migrated?.lastAccessedAt ?? 0) + 86_400_000 - Number(row?.ms))).toBeLessThanOrEqual(1000);
    expect((await whoami(app, cookies[0] as string)).user).toBe('fay');
    expect((await whoami(app, cookies[1] as string)).data.cart).toBe('gus-cart');
  });
});
