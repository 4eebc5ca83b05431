import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, type LapseServer } from '../src/server/index.js';
import { type RedisCluster, startRedisCluster } from '../../../test/helpers/redis-cluster.js';
import { describeRedis, randomPrefix } from '../../../test/helpers/redis-server.js';
import { tempDir } from '../../../test/helpers/tmp.js';

describeRedis('the service on a Redis Cluster (LAPSE_BACKEND=redis-cluster://…)', () => {
  let cluster: RedisCluster;
  let app: LapseServer | undefined;
  let base: string;
  let auth: Record<string, string>;
  let key: Record<string, string>;
  let cleanup: () => void;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    const tmp = tempDir('lapse-srv-cluster-');
    cleanup = tmp.cleanup;
    const backend = `redis-cluster://${cluster.ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
    app = await createServer({ backend, redisPrefix: randomPrefix(), dataDir: tmp.dir, logLevel: 'silent', sweepInterval: 'off' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    key = { authorization: `Bearer ${app.lapse.generatedAdminKey}` };
    auth = { ...key, 'content-type': 'application/json' };
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await cluster?.stop();
    cleanup?.();
  });

  const post = (path: string, body: object) => fetch(`${base}${path}`, { method: 'POST', headers: auth, body: JSON.stringify(body) });

  it('creates, validates and revokes over HTTP, and answers 503 on /health while the cluster is down', { timeout: 60_000 }, async () => {
    const tokens: string[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await post('/v1/sessions', { userId: `h${i % 3}`, data: { i } });
      expect(res.status).toBe(201);
      tokens.push(((await res.json()) as { token: string }).token);
    }
    const valid = await post('/v1/sessions/validate', { token: tokens[4] });
    expect(((await valid.json()) as { session: { data: unknown } }).session.data).toEqual({ i: 4 });
    const list = await fetch(`${base}/v1/users/h1/sessions`, { headers: key });
    expect(((await list.json()) as { sessions: unknown[] }).sessions).toHaveLength(10);
    const id = (tokens[0] as string).split('.')[0] as string;
    expect((await fetch(`${base}/v1/sessions/${id}`, { method: 'DELETE', headers: key })).status).toBe(204);
    expect((await post('/v1/sessions/validate', { token: tokens[0] })).status).toBe(401);
    // With a key: /health is key-only on this branch, public (details with a key) once hardened.
    expect((await fetch(`${base}/health`, { headers: key })).status).toBe(200);

    for (const p of cluster.ports) await cluster.kill(p);
    const health = await fetch(`${base}/health`, { headers: key });
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ status: 'unavailable', error: { code: 'LAPSE_BACKEND_UNAVAILABLE' } });
    const down = await post('/v1/sessions/validate', { token: tokens[4] });
    // Status and code together, so a failure shows what answered instead.
    expect({ status: down.status, body: await down.json() }).toMatchObject({ status: 503, body: { error: { code: 'LAPSE_BACKEND_UNAVAILABLE' } } });
    expect((await post('/v1/sessions', {})).status).toBe(503);
    // Closing cannot write the accesses it still holds: it says so instead of dropping them.
    const closing = app?.close();
    app = undefined;
    await expect(closing).rejects.toMatchObject({ code: 'LAPSE_BACKEND_UNAVAILABLE' });
  });
});
