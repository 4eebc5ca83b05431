import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, type LapseServer } from '../src/server/index.js';
import { describeRedis, randomPrefix, type RedisServer, startRedis } from '../../../test/helpers/redis-server.js';
import { tempDir } from '../../../test/helpers/tmp.js';

describeRedis('the service on Redis', () => {
  let redis: RedisServer;
  let app: LapseServer;
  let headers: Record<string, string>;
  let cleanup: () => void;

  beforeAll(async () => {
    redis = await startRedis();
    const tmp = tempDir('lapse-srv-redis-');
    cleanup = tmp.cleanup;
    app = await createServer({ backend: redis.url, redisPrefix: randomPrefix(), dataDir: tmp.dir, logLevel: 'silent', sweepInterval: 'off' });
    headers = { authorization: `Bearer ${app.lapse.generatedAdminKey}` };
  });

  afterAll(async () => {
    await app?.close();
    await redis?.stop();
    cleanup?.();
  });

  it('serves sessions, and answers 503 (never "no session") while Redis is down', async () => {
    const post = (url: string, payload: object) => app.inject({ method: 'POST', url, headers, payload });
    const created = await post('/v1/sessions', { userId: 'r', data: { on: 'redis' } });
    expect(created.statusCode).toBe(201);
    const { token } = created.json();
    expect((await post('/v1/sessions/validate', { token })).json().session.data).toEqual({ on: 'redis' });
    expect((await app.inject({ method: 'GET', url: '/health', headers })).json()).toMatchObject({ status: 'ok', backend: 'redis' });

    await redis.stop();
    const health = await app.inject({ method: 'GET', url: '/health', headers });
    expect(health.statusCode).toBe(503);
    const validate = await post('/v1/sessions/validate', { token });
    expect(validate.statusCode).toBe(503);
    expect(validate.json().error.code).toBe('LAPSE_BACKEND_UNAVAILABLE');

    await redis.restart();
    // Redis here keeps no data across a restart: the point is that the service recovers.
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await app.inject({ method: 'GET', url: '/health', headers })).statusCode;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
    expect((await post('/v1/sessions', {})).statusCode).toBe(201);
  });

  it('answers /health 503 while Redis refuses writes but still serves reads, and 200 once writes get through', async () => {
    const admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
    try {
      expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      // A primary that must reach a replica before it writes: reads work, every write is refused.
      await admin.config('SET', 'min-replicas-to-write', '1');
      const create = await app.inject({ method: 'POST', url: '/v1/sessions', headers, payload: {} });
      expect(create.statusCode).toBe(503);
      const down = await app.inject({ method: 'GET', url: '/health' });
      expect(down.statusCode).toBe(503);
      expect(down.json()).toEqual({ status: 'unavailable' });
      const detail = (await app.inject({ method: 'GET', url: '/health', headers })).json();
      expect(detail).toMatchObject({ status: 'unavailable', reads: true, writes: false });
      expect(detail.error.message).toMatch(/NOREPLICAS/);
      await admin.config('SET', 'min-replicas-to-write', '0');
      // No other write comes (a balancer took the node out): the probe write proves recovery.
      expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/health', headers })).json()).toMatchObject({ reads: true, writes: true });
    } finally {
      await admin.config('SET', 'min-replicas-to-write', '0').catch(() => undefined);
      admin.disconnect();
    }
  });

  it('logs an outage once when it starts and once when it ends, with the count, and no stack per 503', async () => {
    const lines: Record<string, unknown>[] = [];
    const logStream = new Writable({
      write(chunk, _enc, cb) {
        for (const l of String(chunk).split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l));
        cb();
      },
    });
    const tmp = tempDir('lapse-srv-outage-');
    const node = await createServer({ backend: redis.url, redisPrefix: randomPrefix(), dataDir: tmp.dir, logLevel: 'info', accessLog: false, logStream, sweepInterval: 'off', liveConnections: false });
    const key = { authorization: `Bearer ${node.lapse.generatedAdminKey}` };
    try {
      const { token } = (await node.inject({ method: 'POST', url: '/v1/sessions', headers: key, payload: {} })).json();
      await redis.stop();
      // Concurrent: each waits up to the command timeout for the connection.
      const during = await Promise.all(Array.from({ length: 12 }, () => node.inject({ method: 'POST', url: '/v1/sessions/validate', headers: key, payload: { token } })));
      expect(during.map((r) => r.statusCode)).toEqual(during.map(() => 503));
      let failed = during.length;
      await redis.restart();
      let status = 0;
      for (let i = 0; i < 50 && status !== 201; i++) {
        status = (await node.inject({ method: 'POST', url: '/v1/sessions', headers: key, payload: {} })).statusCode;
        if (status !== 201) {
          failed++;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      expect(status).toBe(201);
      expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]);
      const down = lines.filter((l) => l.msg === 'backend unavailable: requests answer 503 until it serves again');
      const up = lines.filter((l) => l.msg === 'backend available again');
      expect(down).toHaveLength(1);
      expect(up).toHaveLength(1);
      expect(up[0]).toMatchObject({ failedRequests: failed });
      expect(JSON.stringify(lines)).not.toContain('"stack"');
      const metrics = (await node.inject({ method: 'GET', url: '/metrics', headers: key })).body;
      expect(metrics).toMatch(/lapse_http_requests_total\{[^}]*status="503"[^}]*\} [1-9]/);
    } finally {
      await node.close();
      tmp.cleanup();
    }
  }, 20_000);
});
