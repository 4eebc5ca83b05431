/**
 * The console on two service nodes sharing one redis-server: figures are cluster-wide, the
 * connections table is the node's own (and says so), a revoke on one node cuts a socket on
 * the other, and a user search on Redis (no ordered user index) takes the input as a full id.
 */
import type { AddressInfo } from 'node:net';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, type LapseServer } from '../src/server/index.js';
import { describeRedis, randomPrefix, type RedisServer, startRedis } from '../../../test/helpers/redis-server.js';
import { tempDir } from '../../../test/helpers/tmp.js';

const ADMIN = `lapse_admin_${'k'.repeat(40)}`;
const admin = { authorization: `Bearer ${ADMIN}` };

describeRedis('the console on two nodes over Redis', () => {
  let redis: RedisServer;
  const apps: LapseServer[] = [];
  const sockets: Socket[] = [];
  const tmp = tempDir('lapse-console-cluster-');

  beforeAll(async () => {
    redis = await startRedis();
    const redisPrefix = randomPrefix();
    for (const name of ['a', 'b']) {
      const app = await createServer({ backend: redis.url, redisPrefix, dataDir: `${tmp.dir}/${name}`, adminKey: ADMIN, logLevel: 'silent' });
      await app.listen({ host: '127.0.0.1', port: 0 });
      apps.push(app);
    }
  }, 30_000);

  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    for (const app of apps) await app.close();
    await redis?.stop();
    tmp.cleanup();
  });

  const url = (app: LapseServer) => `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  it('shows cluster figures, its own connections, and a revoke on A ends the socket on B', async () => {
    const [a, b] = apps as [LapseServer, LapseServer];
    const created = await a.inject({ method: 'POST', url: '/v1/sessions', headers: admin, payload: { userId: 'nina' } });
    const { token, session } = created.json();
    const s = io(url(b), { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
    sockets.push(s);
    await new Promise<void>((resolve, reject) => s.once('connect', () => resolve()).once('connect_error', reject));

    await expect
      .poll(async () => (await a.inject({ url: '/v1/console/figures', headers: admin })).json(), { timeout: 5000 })
      .toMatchObject({ connections: 1, nodes: 2, sessions: 1 });
    // Node A lists the socket of node B, named by B.
    const onA = (await a.inject({ url: '/v1/console/connections', headers: admin })).json();
    const onB = (await b.inject({ url: '/v1/console/connections', headers: admin })).json();
    expect(onB.node).not.toBe(onA.node);
    expect(onA).toMatchObject({ total: 1, clusterTotal: 1, nodes: 2, answered: 2 });
    expect(onA.connections).toMatchObject([{ sid: s.id, userId: 'nina', sessionId: session.id, node: onB.node }]);
    expect((await a.inject({ url: '/v1/console/connections?user=nobody', headers: admin })).json()).toMatchObject({ total: 0, connections: [], answered: 2 });

    // Disconnect from A a socket that lives on B.
    const second = (await a.inject({ method: 'POST', url: '/v1/sessions', headers: admin, payload: { userId: 'omar' } })).json();
    const s2 = io(url(b), { auth: { token: second.token }, transports: ['websocket'], reconnection: false, forceNew: true });
    sockets.push(s2);
    await new Promise<void>((resolve, reject) => s2.once('connect', () => resolve()).once('connect_error', reject));
    const cut = new Promise<string>((resolve) => s2.once('disconnect', resolve));
    expect((await a.inject({ method: 'POST', url: `/v1/console/connections/${s2.id}/disconnect`, headers: admin })).statusCode).toBe(204);
    expect(await cut).toBe('io server disconnect');
    expect((await a.inject({ method: 'POST', url: '/v1/console/connections/no-such-sid/disconnect', headers: admin })).statusCode).toBe(404);

    // Users on Redis: a full id only.
    expect((await a.inject({ url: '/v1/console/users?prefix=nina', headers: admin })).json()).toEqual({ users: [{ userId: 'nina', sessions: 1 }], cursor: null, exact: true });
    expect((await a.inject({ url: '/v1/console/users?prefix=nin', headers: admin })).json().users).toEqual([]);

    const expired = new Promise<unknown>((resolve) => s.once('session_expired', resolve));
    const revokedAt = Date.now();
    expect((await a.inject({ method: 'DELETE', url: `/v1/sessions/${session.id}`, headers: admin })).statusCode).toBe(204);
    expect(await expired).toEqual({ reason: 'revoked' });
    expect(Date.now() - revokedAt).toBeLessThan(1000);
  });
});
