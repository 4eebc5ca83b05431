import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, type LapseServer } from '../src/server/index.js';
import { describePostgres, type PostgresServer, randomName, startPostgres } from '../../../test/helpers/postgres-server.js';
import { tempDir } from '../../../test/helpers/tmp.js';

const ADMIN_KEY = `pg-admin-${'k'.repeat(24)}`;

describePostgres('the service on PostgreSQL, over real HTTP', () => {
  let pg: PostgresServer;
  let tmp: ReturnType<typeof tempDir>;
  let backend: string;
  beforeAll(async () => {
    pg = await startPostgres();
    tmp = tempDir('lapse-srv-pg-');
    backend = `${await pg.createDatabase('srv')}?schema=${randomName('svc')}`;
  });
  afterAll(async () => {
    await pg?.destroy();
    tmp?.cleanup();
  });

  /** Starts the service on a free loopback port; returns its base URL and a closer. */
  async function serve(): Promise<{ app: LapseServer; base: string }> {
    const app = await createServer({ backend, adminKey: ADMIN_KEY, dataDir: tmp.dir, logLevel: 'silent', sweepInterval: 'off' });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    return { app, base };
  }

  const call = (base: string, method: string, path: string, body?: object) =>
    fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });

  it('creates, validates and revokes, survives a restart of the service, and refuses a bad URL at start', async () => {
    let { app, base } = await serve();
    let kept: string;
    try {
      const created = await call(base, 'POST', '/v1/sessions', { userId: 'pg-user', data: { on: 'postgres' } });
      expect(created.status).toBe(201);
      const { token } = (await created.json()) as { token: string };
      const valid = await call(base, 'POST', '/v1/sessions/validate', { token });
      expect(valid.status).toBe(200);
      expect(((await valid.json()) as { session: { data: unknown } }).session.data).toEqual({ on: 'postgres' });
      expect(await (await call(base, 'GET', '/health')).json()).toMatchObject({ status: 'ok', backend: 'postgres' });

      expect((await call(base, 'POST', '/v1/sessions/revoke', { token })).status).toBe(204);
      expect((await call(base, 'POST', '/v1/sessions/validate', { token })).status).toBe(401);
      kept = ((await (await call(base, 'POST', '/v1/sessions', { userId: 'pg-user' })).json()) as { token: string }).token;
    } finally {
      await app.close();
    }

    // A new process of the service on the same database: the sessions are still there.
    ({ app, base } = await serve());
    try {
      const again = await call(base, 'POST', '/v1/sessions/validate', { token: kept });
      expect(again.status).toBe(200);
      expect(((await again.json()) as { session: { userId: string } }).session.userId).toBe('pg-user');
      const stats = (await (await call(base, 'GET', '/v1/stats')).json()) as { sessions: number };
      expect(stats.sessions).toBe(1);
    } finally {
      await app.close();
    }

    await expect(createServer({ backend: 'postgres://', dataDir: tmp.dir, logLevel: 'silent' })).rejects.toMatchObject({ code: 'LAPSE_INVALID_OPTION' });
    // A schema Lapse must not write into stops the start, with the reason.
    const foreign = randomName('foreign');
    const { default: pgLib } = await import('pg');
    const c = new pgLib.Client({ connectionString: pg.url });
    await c.connect();
    await c.query(`CREATE SCHEMA ${foreign}; CREATE TABLE ${foreign}.lapse_sessions (x int)`);
    await c.end();
    await expect(createServer({ backend: `${pg.url}?schema=${foreign}`, adminKey: ADMIN_KEY, dataDir: tmp.dir, logLevel: 'silent' }))
      .rejects.toMatchObject({ code: 'LAPSE_INVALID_OPTION', message: expect.stringContaining("not Lapse's") });
  });

  it('the console finds users and sessions by id prefix, in pages', async () => {
    const { app, base } = await serve();
    try {
      const made: string[] = [];
      for (const u of ['pfx-b', 'pfx-a', 'pfx-C', 'pfx_d', 'other']) {
        made.push(((await (await call(base, 'POST', '/v1/sessions', { userId: u })).json()) as { session: { id: string } }).session.id);
      }
      const page = async (path: string) => (await (await call(base, 'GET', path)).json()) as { users: { userId: string }[]; cursor: string | null; exact: boolean };
      const first = await page('/v1/console/users?prefix=pfx-&limit=2');
      expect(first).toEqual({ users: [{ userId: 'pfx-C', sessions: 1 }, { userId: 'pfx-a', sessions: 1 }], cursor: 'pfx-a', exact: false });
      expect((await page('/v1/console/users?prefix=pfx-&limit=2&cursor=pfx-a')).users.map((u) => u.userId)).toEqual(['pfx-b']);
      const id = made[0] as string;
      const hit = (await (await call(base, 'GET', `/v1/console/sessions?prefix=${encodeURIComponent(id.slice(0, 8))}`)).json()) as { sessions: { id: string }[] };
      expect(hit.sessions.map((s) => s.id)).toEqual(made.filter((m) => m.startsWith(id.slice(0, 8))).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    } finally {
      await app.close();
    }
  });
});
