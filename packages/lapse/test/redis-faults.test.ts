import { afterAll, beforeAll, expect, it } from 'vitest';
import { redis } from '../src/backends/redis/backend.js';
import { isLapseError } from '../src/core/errors.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore, type SessionStore } from '../src/core/store.js';
import { describeRedis, randomPrefix, type RedisServer, startRedis } from '../../../test/helpers/redis-server.js';

interface Call {
  start: number;
  end: number;
  outcome: 'ok' | string;
}

// This file kills its redis-server, so it has one of its own.
describeRedis('redis backend when Redis goes away', () => {
  let server: RedisServer;
  let store: SessionStore;

  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await store?.close().catch(() => {});
    await server?.stop();
  });

  it('fails calls within the command timeout while Redis is down and recovers without a restart', { timeout: 60_000 }, async () => {
    const timeoutMs = 1000;
    store = createStore({
      backend: redis({ url: server.url, prefix: randomPrefix(), commandTimeout: timeoutMs, logger: silentLogger }),
      sweepInterval: false,
      logger: silentLogger,
    });
    const errors: unknown[] = [];
    store.on('error', (err) => errors.push(err));
    const { token, session } = await store.create({ userId: 'u', data: { n: 0 } });

    // Load: 10 callers validating, creating and updating in a loop.
    const calls: Call[] = [];
    let running = true;
    const worker = async (w: number) => {
      for (let i = 0; running && i < 1_000_000; i++) {
        const start = performance.now();
        let outcome = 'ok';
        try {
          if (i % 3 === 0) await store.validate(token);
          else if (i % 3 === 1) await store.create({ userId: `w${w}` });
          else await store.update(session.id, { n: i });
        } catch (err) {
          outcome = isLapseError(err) ? err.code : String(err);
        }
        calls.push({ start, end: performance.now(), outcome });
        if (outcome !== 'ok') await new Promise((r) => setTimeout(r, 10)); // an app backs off a little too
      }
    };
    const workers = Array.from({ length: 10 }, (_, w) => worker(w));
    await until(() => calls.filter((c) => c.outcome === 'ok').length >= 200, 10_000);

    const killedAt = performance.now();
    await server.stop();
    // Every caller sees at least two calls fail, i.e. more than one full timeout while down.
    await until(() => calls.filter((c) => c.start > killedAt && c.outcome !== 'ok').length >= 30, 15_000);
    await new Promise((r) => setTimeout(r, timeoutMs * 1.5));
    const restartAt = performance.now();
    const down = calls.filter((c) => c.start > killedAt && c.end < restartAt);
    expect(down.length).toBeGreaterThanOrEqual(30);
    for (const c of down) {
      expect(c.outcome).toBe('LAPSE_BACKEND_UNAVAILABLE');
      expect(c.end - c.start).toBeLessThan(timeoutMs + 1500); // bounded: the timeout plus slack
    }
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => isLapseError(e, 'LAPSE_BACKEND_UNAVAILABLE'))).toBe(true);

    // Same port, same store, same backend object: calls succeed again by themselves.
    await server.restart();
    await until(() => calls.some((c) => c.start > restartAt && c.outcome === 'ok'), 15_000);
    running = false;
    await Promise.all(workers);
    const fresh = await store.create({ userId: 'after', data: { back: true } });
    expect((await store.validate(fresh.token))?.data).toEqual({ back: true });
    expect((await store.update(fresh.session.id, { back: 2 })).version).toBe(2);
    expect(await store.listUser('after')).toHaveLength(1);
  });
});

async function until(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
