/**
 * The server-side statement bound (#20): a statement stuck behind a row lock that another
 * connection holds is aborted by PostgreSQL (statement_timeout), the call fails as
 * LAPSE_BACKEND_UNAVAILABLE (503 over HTTP), its connection is free again at once, and the
 * same call succeeds once the lock is gone.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { postgres } from 'lapse/postgres';
import { isLapseError } from 'lapse/internal';
import { silentLogger } from 'lapse/internal';
import { createServer } from '../src/server/index.js';
import { createStore } from 'lapse/internal';
import { describePostgres, type PostgresServer, randomName, startPostgres } from '../../../test/helpers/postgres-server.js';
import { tempDir } from '../../../test/helpers/tmp.js';

describePostgres('PostgreSQL statement timeout', () => {
  let server: PostgresServer;
  let url: string;
  beforeAll(async () => {
    server = await startPostgres();
    url = await server.createDatabase('stmt');
  });
  afterAll(async () => {
    await server?.destroy();
  });

  /** A second connection that holds the row lock of session `id` until release() (its own transaction). */
  async function holdRow(schema: string, id: string): Promise<{ release(): Promise<void> }> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query('BEGIN');
    const r = await c.query(`SELECT id FROM ${schema}.lapse_sessions WHERE id = $1 FOR UPDATE`, [id]);
    expect(r.rowCount).toBe(1);
    return {
      async release() {
        await c.query('ROLLBACK');
        await c.end();
      },
    };
  }

  it('refuses a statementTimeout above commandTimeout', () => {
    expect(() => postgres({ url, commandTimeout: '1s', statementTimeout: '2s' })).toThrow(/statementTimeout/);
    let err: unknown;
    try {
      postgres({ url, statementTimeout: 'soon' });
    } catch (e) {
      err = e;
    }
    expect(isLapseError(err, 'LAPSE_INVALID_OPTION')).toBe(true);
  });

  it('an update blocked by a row lock fails as LAPSE_BACKEND_UNAVAILABLE within the bound, the connection is freed, and it works after', async () => {
    const schema = randomName('st');
    // One pooled connection: if the aborted statement kept it, the next call would wait for it.
    const backend = postgres({ url, schema, poolSize: 1, statementTimeout: '300ms', commandTimeout: '5s', logger: silentLogger });
    const store = createStore({ backend, sweepInterval: false, logger: silentLogger });
    try {
      const { token, session } = await store.create({ userId: 'u', data: { n: 0 } });
      const lock = await holdRow(schema, session.id);
      try {
        const t0 = Date.now();
        const err = await store.update(session.id, { n: 1 }).catch((e: unknown) => e);
        const took = Date.now() - t0;
        expect(isLapseError(err, 'LAPSE_BACKEND_UNAVAILABLE')).toBe(true);
        expect(String((err as Error).cause ?? (err as Error).message)).toMatch(/statement timeout/);
        expect(took).toBeGreaterThanOrEqual(250);
        expect(took).toBeLessThan(3000);
        // The single connection is free at once: a read (not blocked by the row lock) answers.
        expect((await store.get(session.id))?.data).toEqual({ n: 0 });
        expect((await store.validate(token))?.id).toBe(session.id);
      } finally {
        await lock.release();
      }
      expect((await store.update(session.id, { n: 2 })).data).toEqual({ n: 2 });
      expect((await store.get(session.id))?.version).toBe(2);
    } finally {
      await store.close();
    }
  });

  it('over HTTP: a PATCH blocked by a row lock answers 503 LAPSE_BACKEND_UNAVAILABLE, not a stuck request', { timeout: 30_000 }, async () => {
    const schema = randomName('svc');
    const tmp = tempDir('lapse-srv-pg-stmt-');
    const adminKey = `pg-admin-${'s'.repeat(24)}`;
    // The service's default bound: 3 s on the server, 5 s on the client.
    const app = await createServer({ backend: `${url}?schema=${schema}`, adminKey, dataDir: tmp.dir, logLevel: 'silent', sweepInterval: 'off' });
    try {
      const base = await app.listen({ host: '127.0.0.1', port: 0 });
      const headers = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
      const created = await fetch(`${base}/v1/sessions`, { method: 'POST', headers, body: JSON.stringify({ data: { a: 1 } }) });
      expect(created.status).toBe(201);
      const { session } = (await created.json()) as { session: { id: string } };
      const lock = await holdRow(schema, session.id);
      let res: Response;
      const t0 = Date.now();
      try {
        res = await fetch(`${base}/v1/sessions/${session.id}`, { method: 'PATCH', headers, body: JSON.stringify({ data: { a: 2 } }) });
      } finally {
        await lock.release();
      }
      const took = Date.now() - t0;
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('LAPSE_BACKEND_UNAVAILABLE');
      expect(took).toBeGreaterThanOrEqual(2500);
      expect(took).toBeLessThan(5000);
      const again = await fetch(`${base}/v1/sessions/${session.id}`, { method: 'PATCH', headers, body: JSON.stringify({ data: { a: 3 } }) });
      expect(again.status).toBe(200);
    } finally {
      await app.close();
      tmp.cleanup();
    }
  });
});
