import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { silentLogger } from '../src/util/logger.js';
import type { ClusterStats } from '../src/socket.io/index.js';
import { RedisRegistry } from '../src/socket.io/registry.js';
import { ask, type ClientSocket, expectedStats, killFixtures, next, spawnFixture } from './fixtures/socketio-harness.js';
import { describeRedis, randomPrefix, type RedisServer, startRedis } from '../../../test/helpers/redis-server.js';
import { io as connectClient } from 'socket.io-client';

const NODE = join(import.meta.dirname, 'fixtures/socketio-node.ts');
const LEASE_TTL = 1500;
// The reader's polling step plus room for a loaded two-core machine to run it.
const READ_GRACE = 1000;

interface Node {
  id: string;
  url: string;
  child: ChildProcess;
}

interface Client {
  node: string;
  userId: string;
  rooms: Set<string>;
  socket: ClientSocket;
}

async function startNode(redisUrl: string, prefix: string, id: string): Promise<Node> {
  const { child, first } = await spawnFixture<{ port: number }>(NODE, [redisUrl, prefix, id, String(LEASE_TTL)]);
  return { id, url: `http://127.0.0.1:${first.port}`, child };
}

/** What the registry must report for these clients. */
function truth(clients: Client[], nodes: number): ClusterStats {
  return { ...expectedStats(clients), nodes };
}

describeRedis('cluster presence on Redis', () => {
  let redis: RedisServer;
  let reader: RedisRegistry;
  const nodes: Node[] = [];
  const clients: Client[] = [];

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    for (const c of clients) c.socket.disconnect();
    killFixtures();
    await reader?.close();
    await redis?.stop();
  });

  it('three nodes: cluster stats agree with the truth; a SIGKILLed node leaves presence within the lease time', { timeout: 60_000 }, async () => {
    const prefix = randomPrefix();
    nodes.push(...(await Promise.all(['a', 'b', 'c'].map((id) => startNode(redis.url, prefix, id)))));
    reader = new RedisRegistry({ url: redis.url, prefix, logger: silentLogger });

    // Users spread over nodes (u1 is on all three), rooms spanning nodes.
    const plan: [string, string, string[]][] = [
      ['a', 'u1', ['lobby']], ['a', 'u2', ['lobby', 'match-1']], ['a', 'u3', []], ['a', 'u1', ['match-2']],
      ['b', 'u1', ['match-1']], ['b', 'u4', ['lobby']], ['b', 'u5', ['match-1', 'match-3']],
      ['c', 'u1', ['match-1']], ['c', 'u6', []], ['c', 'u2', ['match-2']],
    ];
    for (const [nodeId, userId, rooms] of plan) {
      const node = nodes.find((n) => n.id === nodeId) as Node;
      const socket = connectClient(node.url, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { userId } });
      await next(socket, 'connect');
      for (const room of rooms) await ask(socket, 'join', room);
      clients.push({ node: nodeId, userId, rooms: new Set(rooms), socket });
    }
    await expect.poll(() => reader.stats(), { timeout: 5000, interval: 50 }).toEqual(truth(clients, 3));
    expect(await reader.userConnections('u1')).toBe(4);
    expect(await reader.roomConnections('match-1')).toBe(4);
    expect((await reader.nodes()).sort()).toEqual(['a', 'b', 'c']);

    // Messages cross nodes through the streams adapter: a broadcast from a reaches match-1 on b and c.
    const onB = clients.find((c) => c.node === 'b' && c.rooms.has('match-1')) as Client;
    const onC = clients.find((c) => c.node === 'c' && c.rooms.has('match-1')) as Client;
    const newsB = next<string>(onB.socket, 'news');
    const newsC = next<string>(onC.socket, 'news');
    await ask(clients[1]?.socket as ClientSocket, 'broadcast', 'match-1', 'round 2');
    expect(await Promise.all([newsB, newsC])).toEqual(['round 2', 'round 2']);

    // Leaves and disconnects are mirrored.
    const leaver = clients.find((c) => c.node === 'c' && c.rooms.has('match-2')) as Client;
    await ask(leaver.socket, 'leave', 'match-2');
    leaver.rooms.delete('match-2');
    const quitter = clients.splice(clients.findIndex((c) => c.node === 'a' && c.userId === 'u3'), 1)[0] as Client;
    quitter.socket.disconnect();
    await expect.poll(() => reader.stats(), { timeout: 5000, interval: 50 }).toEqual(truth(clients, 3));

    // Node b dies without a word.
    const b = nodes.find((n) => n.id === 'b') as Node;
    const survivors = clients.filter((c) => c.node !== 'b');
    const killedAt = Date.now();
    b.child.kill('SIGKILL');
    let clearedAt = 0;
    await expect
      .poll(
        async () => {
          const s = await reader.stats();
          if (!clearedAt && s.nodes === 2) clearedAt = Date.now();
          return s;
        },
        { timeout: LEASE_TTL + 5000, interval: 50 },
      )
      .toEqual(truth(survivors, 2));
    expect(clearedAt - killedAt).toBeLessThanOrEqual(LEASE_TTL + READ_GRACE);
    expect(await reader.userConnections('u1')).toBe(3);
    expect(await reader.isOnline('u4')).toBe(false);
    expect((await reader.nodes()).sort()).toEqual(['a', 'c']);
  });
});
