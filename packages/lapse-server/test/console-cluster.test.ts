/**
 * The console on two service nodes sharing one redis-server, and on two sharing a real Redis
 * Cluster (redis-cluster://): figures are cluster-wide, each node's connections table lists
 * the other's sockets (named by their node), a Disconnect on one node cuts a socket on the
 * other, a user id prefix search finds users, and a revoke on one node cuts a socket on the other.
 */
import type { AddressInfo } from 'node:net';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, type LapseServer } from '../src/server/index.js';
import { useRedisCluster } from '../../../test/helpers/redis-cluster.js';
import { describeRedis, randomPrefix, startRedis } from '../../../test/helpers/redis-server.js';
import { tempDir } from '../../../test/helpers/tmp.js';

const ADMIN = `lapse_admin_${'k'.repeat(40)}`;
const admin = { authorization: `Bearer ${ADMIN}` };

/** Two service nodes on `backend()` (a redis:// or redis-cluster:// URL), started before the tests. */
function twoNodes(backend: () => string): LapseServer[] {
  const apps: LapseServer[] = [];
  const tmp = tempDir('lapse-console-cluster-');
  beforeAll(async () => {
    const redisPrefix = randomPrefix();
    for (const name of ['a', 'b']) {
      const app = await createServer({ backend: backend(), redisPrefix, dataDir: `${tmp.dir}/${name}`, adminKey: ADMIN, logLevel: 'silent' });
      await app.listen({ host: '127.0.0.1', port: 0 });
      apps.push(app);
    }
  }, 30_000);
  afterAll(async () => {
    for (const app of apps) await app.close();
    tmp.cleanup();
  });
  return apps;
}

describeRedis('the console on two nodes over Redis', () => {
  let stop: (() => Promise<void>) | undefined;
  let redisUrl = '';
  beforeAll(async () => {
    const redis = await startRedis();
    redisUrl = redis.url;
    stop = () => redis.stop();
  }, 30_000);
  afterAll(async () => {
    await stop?.();
  });
  consoleOnTwoNodes(twoNodes(() => redisUrl));
});

describeRedis('the console on two nodes over a Redis Cluster (redis-cluster://)', () => {
  const cluster = useRedisCluster();
  consoleOnTwoNodes(twoNodes(() => `redis-cluster://${cluster().ports.map((p) => `127.0.0.1:${p}`).join(',')}`));
});

function consoleOnTwoNodes(apps: LapseServer[]): void {
  const sockets: Socket[] = [];
  afterAll(() => {
    for (const s of sockets) s.disconnect();
  });

  const url = (app: LapseServer) => `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  it('shows cluster figures and the other node\'s connections, disconnects and revokes across nodes', async () => {
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

    // Users by id prefix, from the ordered user index (on a cluster, every bucket's).
    expect((await a.inject({ url: '/v1/console/users?prefix=nin', headers: admin })).json()).toEqual({ users: [{ userId: 'nina', sessions: 1 }], cursor: null, exact: false });
    expect((await b.inject({ url: '/v1/console/users?prefix=', headers: admin })).json().users).toEqual([{ userId: 'nina', sessions: 1 }, { userId: 'omar', sessions: 1 }]);

    const expired = new Promise<unknown>((resolve) => s.once('session_expired', resolve));
    const revokedAt = Date.now();
    expect((await a.inject({ method: 'DELETE', url: `/v1/sessions/${session.id}`, headers: admin })).statusCode).toBe(204);
    expect(await expired).toEqual({ reason: 'revoked' });
    expect(Date.now() - revokedAt).toBeLessThan(1000);
  });
}
