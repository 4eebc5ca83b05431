import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { useRedisCluster } from '../../../test/helpers/redis-cluster.js';
import { describeRedis, randomPrefix, type RedisServer, startRedis } from '../../../test/helpers/redis-server.js';

const FIXTURE = join(import.meta.dirname, 'fixtures/redis-scheduler-node.ts');
const NODES = 3;
const RUN_MS = 14_000;

interface Line {
  pid: number;
  at: number;
  ready?: boolean;
  run?: number;
  job?: string;
  stopped?: boolean;
}

/** Runs one node to its end and returns what it printed. */
function node(url: string, prefix: string): Promise<Line[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, url, prefix, String(RUN_MS)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), RUN_MS + 30_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      if (code !== 0) return reject(new Error(`node exited with ${code}: ${err}`));
      resolve(out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line));
    });
  });
}

describeRedis('scheduler lease on Redis', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('three processes on one Redis run each session_cleanup slot exactly once', { timeout: 90_000 }, async () => {
    const prefix = randomPrefix();
    expectOnce(await Promise.all(Array.from({ length: NODES }, () => node(server.url, prefix))));
  });
});

describeRedis('scheduler lease on a Redis Cluster', () => {
  const cluster = useRedisCluster();

  it('three processes on a 3-master cluster run each session_cleanup slot exactly once', { timeout: 90_000 }, async () => {
    const prefix = randomPrefix();
    expectOnce(await Promise.all(Array.from({ length: NODES }, () => node(cluster().urls.join(','), prefix))));
  });
});

/** No slot ran twice on any node, and while all were up every slot ran exactly once. */
function expectOnce(outputs: Line[][]): void {
  const runs = outputs.flat().filter((l) => l.run !== undefined);
  expect(runs.every((l) => l.job === 'session_cleanup')).toBe(true);

  // No slot ever ran twice, on any node.
  const bySlot = new Map<number, number[]>();
  for (const l of runs) bySlot.set(l.run as number, [...(bySlot.get(l.run as number) ?? []), l.pid]);
  for (const [slot, pids] of bySlot) expect(pids, `slot ${slot}`).toHaveLength(1);

  // While all three were up, every slot ran exactly once in total.
  const upFrom = Math.max(...outputs.map((o) => (o.find((l) => l.ready) as Line).at));
  const upTo = Math.min(...outputs.map((o) => (o.find((l) => l.stopped) as Line).at));
  const shared: number[] = [];
  for (let slot = Math.ceil(upFrom / 1000) * 1000; slot + 1000 <= upTo; slot += 1000) shared.push(slot);
  expect(shared.length).toBeGreaterThanOrEqual(10);
  for (const slot of shared) expect(bySlot.get(slot), `slot ${slot}`).toHaveLength(1);
}
