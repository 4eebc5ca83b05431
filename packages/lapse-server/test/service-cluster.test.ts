/**
 * Three `lapse serve` processes on one redis-server started here, with real socket.io-client
 * sockets spread over them: sessions ended on one node reach the sockets on the others with
 * the true reason, presence is exact on every node, and handshakes are authenticated and
 * rate limited.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeRedis, randomPrefix, type RedisServer, startRedis } from '../../../test/helpers/redis-server.js';
import { ensureBuilt, type Running, serve } from '../../../test/helpers/serve-process.js';
import { tempDir } from '../../../test/helpers/tmp.js';

const ADMIN = `lapse_admin_${'c'.repeat(43)}`;
const HEADERS = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
/** The bound for a session ended on one node to reach sockets on the others. */
const WITHIN_MS = 1000;

describeRedis('three service nodes on one Redis', () => {
  let redis: RedisServer;
  let tmp: { dir: string; cleanup: () => void };
  const nodes: Running[] = [];
  const children: ChildProcess[] = [];
  const sockets: Socket[] = [];

  beforeAll(async () => {
    ensureBuilt();
    redis = await startRedis();
    tmp = tempDir('lapse-cluster-');
    const prefix = randomPrefix();
    for (const name of ['a', 'b', 'c']) {
      const cwd = join(tmp.dir, name);
      mkdirSync(cwd);
      const node = await serve(cwd, {
        LAPSE_BACKEND: redis.url,
        LAPSE_REDIS_PREFIX: prefix,
        LAPSE_ADMIN_KEY: ADMIN,
        LAPSE_RATE_LIMIT: '50/1m',
        LAPSE_MAX_SESSIONS_PER_USER: '2',
      });
      nodes.push(node);
      children.push(node.child);
    }
  }, 60_000);

  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await redis?.stop();
    tmp?.cleanup();
  });

  const node = (i: number) => () => nodes[i] as Running;
  const A = node(0);
  const B = node(1);
  const C = node(2);

  async function post(node: Running, path: string, body: unknown): Promise<Response> {
    return fetch(`${node.url}${path}`, { method: 'POST', headers: HEADERS, body: JSON.stringify(body) });
  }

  async function newSession(userId: string, extra: Record<string, unknown> = {}): Promise<string> {
    const r = await post(A(), '/v1/sessions', { userId, ...extra });
    expect(r.status).toBe(201);
    return ((await r.json()) as { token: string }).token;
  }

  /** A connected socket, or the connect_error's message and data. */
  function connect(node: Running, auth?: Record<string, unknown>): Promise<Socket> {
    const s = io(node.url, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
    sockets.push(s);
    return new Promise((resolve, reject) => {
      s.once('connect', () => resolve(s));
      s.once('connect_error', (err: Error & { data?: unknown }) => reject(Object.assign(new Error(err.message), { data: err.data })));
    });
  }

  async function refusal(node: Running, auth?: Record<string, unknown>): Promise<{ message: string; data: unknown }> {
    try {
      const s = await connect(node, auth);
      s.disconnect();
    } catch (err) {
      return { message: (err as Error).message, data: (err as { data?: unknown }).data };
    }
    throw new Error('the handshake was accepted');
  }

  /** Resolves with the `session_expired` reason once the socket is disconnected by the server; rejects after `ms`. */
  function ended(s: Socket, ms = WITHIN_MS): Promise<string> {
    return new Promise((resolve, reject) => {
      let reason = '(none)';
      const timer = setTimeout(() => reject(new Error(`socket not cut within ${ms} ms`)), ms);
      s.once('session_expired', (p: { reason: string }) => (reason = p.reason));
      s.once('disconnect', (why) => {
        clearTimeout(timer);
        resolve(`${reason}/${why}`);
      });
    });
  }

  async function connections(node: Running): Promise<{ totalSessions: number; uniqueUsers: number; nodes: number; node: { totalSessions: number } }> {
    const r = await fetch(`${node.url}/health/connections`, { headers: HEADERS });
    expect(r.status).toBe(200);
    return (await r.json()) as never;
  }

  it('refuses anonymous and wrong-token handshakes with LAPSE_UNAUTHORIZED', async () => {
    const anonymous = await refusal(B());
    expect(anonymous).toEqual({ message: 'LAPSE_UNAUTHORIZED', data: { code: 'LAPSE_UNAUTHORIZED', message: expect.stringContaining('token') } });
    const token = await newSession('mallory');
    const wrong = `${token.split('.')[0]}.${'x'.repeat(43)}`;
    expect((await refusal(C(), { token: wrong })).message).toBe('LAPSE_UNAUTHORIZED');
    expect((await refusal(C(), { token: 'garbage' })).message).toBe('LAPSE_UNAUTHORIZED');
    await post(A(), '/v1/sessions/revoke', { token });
    expect((await refusal(B(), { token })).message).toBe('LAPSE_UNAUTHORIZED');
  });

  it('a revoke on A cuts the sockets on B and C (silent ones too) with reason revoked', async () => {
    const token = await newSession('alice');
    const onB = await connect(B(), { token });
    const onC = await connect(C(), { token });
    const chatty = await connect(C(), { token });
    chatty.emit('heartbeat');
    const cuts = [ended(onB), ended(onC), ended(chatty)];
    expect((await post(A(), '/v1/sessions/revoke', { token })).status).toBe(204);
    expect(await Promise.all(cuts)).toEqual(Array(3).fill('revoked/io server disconnect'));
  });

  it('revoking a user on A cuts every session of that user on B and C', async () => {
    const t1 = await newSession('bob');
    const t2 = await newSession('bob');
    const cuts = [ended(await connect(B(), { token: t1 })), ended(await connect(C(), { token: t2 }))];
    const r = await fetch(`${A().url}/v1/users/bob/sessions`, { method: 'DELETE', headers: { authorization: HEADERS.authorization } });
    expect(r.status).toBe(200);
    expect(await Promise.all(cuts)).toEqual(['revoked/io server disconnect', 'revoked/io server disconnect']);
  });

  it('a rotate on A cuts the old session\'s sockets on B and C with reason rotated; the new token connects', async () => {
    const token = await newSession('carol');
    const cuts = [ended(await connect(B(), { token })), ended(await connect(C(), { token }))];
    const r = await post(A(), '/v1/sessions/rotate', { token });
    expect(r.status).toBe(200);
    expect(await Promise.all(cuts)).toEqual(['rotated/io server disconnect', 'rotated/io server disconnect']);
    const fresh = ((await r.json()) as { token: string }).token;
    (await connect(B(), { token: fresh })).disconnect();
  });

  it('an eviction on A (per-user cap 2) cuts the evicted session\'s socket on B with reason evicted, and no other', async () => {
    const first = await connect(B(), { token: await newSession('erin') });
    const second = await connect(B(), { token: await newSession('erin') });
    // Whichever of the two is least recently used goes; its socket, and only that one, is cut.
    const cuts = [ended(first).catch(() => null), ended(second).catch(() => null)];
    await newSession('erin');
    expect((await Promise.all(cuts)).sort()).toEqual(['evicted/io server disconnect', null]);
    first.disconnect();
    second.disconnect();
  });

  it('an expiry swept on A reaches silent sockets on B and C with reason expired', async () => {
    const token = await newSession('dave', { idleTimeout: '1s' });
    const cuts = [ended(await connect(B(), { token }), 10_000), ended(await connect(C(), { token }), 10_000)];
    // Whichever comes first, the sweep on A (run by hand here) or B's and C's own check at the
    // session's expiry, the reason is the same.
    await new Promise((r) => setTimeout(r, 1100));
    expect((await post(A(), '/v1/jobs/session_cleanup/run', {})).status).toBeLessThan(300);
    expect(await Promise.all(cuts)).toEqual(['expired/io server disconnect', 'expired/io server disconnect']);
  });

  it('presence is exact on every node after connects, disconnects and a SIGKILLed node', { timeout: 60_000 }, async () => {
    const users = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
    const placed: Socket[] = [];
    for (const [i, u] of users.entries()) placed.push(await connect(nodes[i % 3] as Running, { token: await newSession(u) }));
    const expectEverywhere = async (total: number, perNode: (number | undefined)[]) => {
      for (const [i, node] of nodes.entries()) {
        if (perNode[i] === undefined) continue;
        await expect
          .poll(async () => {
            const c = await connections(node);
            return [c.totalSessions, c.uniqueUsers, c.node.totalSessions];
          }, { timeout: 20_000, interval: 100 })
          .toEqual([total, total, perNode[i]]);
      }
    };
    await expectEverywhere(6, [2, 2, 2]);
    (placed[5] as Socket).disconnect(); // p6, on C
    await expectEverywhere(5, [2, 2, 1]);
    C().child.kill('SIGKILL');
    await C().exited;
    // C's lease lapses (10 s) and the next read on A or B subtracts its part.
    await expectEverywhere(4, [2, 2, undefined]);
    expect((await connections(A())).nodes).toBe(2);
  });

  it('1,000 wrong-token handshakes get rate limited while a valid client keeps connecting', { timeout: 120_000 }, async () => {
    const token = await newSession('valid');
    // A different (unknown) session id each time, so that the address's budget is what limits.
    const wrong = (i: number) => `${String(i).padStart(22, 'w')}.${'x'.repeat(43)}`;
    const seen = new Map<string, number>();
    let validConnects = 0;
    const ROUNDS = 1000;
    const CONCURRENCY = 20;
    for (let i = 0; i < ROUNDS; i += CONCURRENCY) {
      const batch = Array.from({ length: Math.min(CONCURRENCY, ROUNDS - i) }, (_, j) => refusal(A(), { token: wrong(i + j) }));
      for (const r of await Promise.all(batch)) seen.set(r.message, (seen.get(r.message) ?? 0) + 1);
      if (i % 100 === 0) {
        const s = await connect(A(), { token });
        validConnects++;
        s.disconnect();
      }
    }
    // The limit is 50 failures per address per minute: the 50th and every one after it are limited, as on HTTP.
    expect(seen.get('LAPSE_UNAUTHORIZED')).toBe(49);
    expect(seen.get('LAPSE_RATE_LIMITED')).toBe(ROUNDS - 49);
    expect(validConnects).toBe(ROUNDS / 100);
  });
});
