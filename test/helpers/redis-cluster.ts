/**
 * A real Redis Cluster for tests: 3 masters and 3 replicas on free loopback ports, made with
 * `redis-cli --cluster create`, no persistence, in a temporary folder; stopped after. A short
 * cluster-node-timeout makes a replica take over a killed master within a few seconds.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { freePortIn, portFree, workerSlice } from './ports.js';
import { spawnServer } from './redis-server.js';
import { tempDir } from './tmp.js';

const run = promisify(execFile);
const CLI = process.env.REDIS_CLI ?? 'redis-cli';
const READY_TIMEOUT_MS = 30_000;
/** Redis's cluster bus listens on the client port + 10000. */
const BUS_OFFSET = 10_000;
/** Where node ports are drawn from (this worker's slice, see ports.ts): bus ports (+10000) 30000-32767, both below the ephemeral range. */
export const NODE_PORTS = workerSlice({ from: 20_000, to: 22_768 });
/** Spawns per node before a start failure fails the suite. */
const SPAWN_ATTEMPTS = 4;
/** How long a master may be silent before its replica is promoted. */
export const NODE_TIMEOUT_MS = 1000;

export interface RedisCluster {
  /** Seed URLs, one per node: `redis://127.0.0.1:<port>`. */
  urls: string[];
  ports: number[];
  /** Ports of the nodes that are masters now. */
  masters(): Promise<number[]>;
  /** Kills one node with SIGKILL (a crash) and waits for it to exit. */
  kill(port: number): Promise<void>;
  /** Starts a killed node again with its nodes.conf: it rejoins (a former master as a replica). */
  restart(port: number): Promise<void>;
  /** Waits until every running node reports cluster_state:ok with `masters` masters serving all slots. */
  waitHealthy(masters?: number): Promise<void>;
  /** Kills every node and removes the folder. */
  stop(): Promise<void>;
}

/** Starts 3 masters + 3 replicas and waits until every node reports cluster_state:ok. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const tmp = tempDir('lapse-cluster-');
  const ports: number[] = [];
  const children = new Map<number, ChildProcess>();
  const killOne = async (port: number): Promise<void> => {
    const c = children.get(port);
    children.delete(port);
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGKILL');
    await exited;
  };
  const stop = async (): Promise<void> => {
    for (const p of [...children.keys()]) await killOne(p);
    tmp.cleanup();
  };
  try {
    const spawnNode = (port: number) =>
      spawnServer(port, [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', `${tmp.dir}/nodes-${port}.conf`,
        '--cluster-node-timeout', String(NODE_TIMEOUT_MS),
        '--dir', tmp.dir,
      ]);
    // One node at a time, each on a port whose bus port is free too; a port another process takes
    // between the probe and the spawn (tests run side by side) costs a retry on a new port.
    for (let node = 0; node < 6; node++) {
      for (let attempt = 1; ; attempt++) {
        const port = await nodePort(ports);
        try {
          children.set(port, await spawnNode(port));
          ports.push(port);
          break;
        } catch (err) {
          if (attempt >= SPAWN_ATTEMPTS) throw err;
        }
      }
    }
    await run(CLI, ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], {
      timeout: READY_TIMEOUT_MS,
    });
    const cluster: RedisCluster = {
      urls: ports.map((p) => `redis://127.0.0.1:${p}`),
      ports,
      async masters() {
        const out: number[] = [];
        for (const p of children.keys()) if ((await info(p, 'replication')).includes('role:master')) out.push(p);
        return out.sort((a, b) => a - b);
      },
      kill: killOne,
      async restart(port) {
        if (!children.has(port)) children.set(port, await spawnNode(port));
      },
      waitHealthy: (masters = 3) => waitHealthy([...children.keys()], masters),
      stop,
    };
    await cluster.waitHealthy();
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * A free port for a cluster node, none of `taken`, whose cluster bus port (Redis's port + 10000)
 * is free as well: redis-server exits at start when either cannot be bound. Both are drawn below
 * Linux's ephemeral range (32768 and up), so the kernel never hands them to an outgoing
 * connection, neither between this check and the spawn nor before a restart on the same port.
 */
async function nodePort(taken: number[]): Promise<number> {
  // Bus ports lie above the node range, one per port: only the node ports can clash with `taken`.
  return freePortIn(NODE_PORTS, taken, (port) => portFree(port + BUS_OFFSET));
}

async function waitHealthy(ports: number[], masters: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const states = await Promise.all(ports.map((p) => info(p, 'cluster', 'cluster info').catch(() => '')));
    const replication = await Promise.all(ports.map((p) => info(p, 'replication').catch(() => '')));
    const ok = states.every((s) => s.includes('cluster_state:ok') && s.includes('cluster_slots_ok:16384'));
    const up = replication.filter((r) => r.includes('role:master')).length === masters;
    // Replicas must be in sync, or a failover right after start would have nothing to promote.
    const synced = replication.every((r) => !r.includes('role:slave') || r.includes('master_link_status:up'));
    if (ok && up && synced) return;
    if (Date.now() > deadline) throw new Error(`redis cluster not healthy within ${READY_TIMEOUT_MS} ms: ${states.join(' | ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One INFO section (or CLUSTER INFO) of one node, through a short-lived connection. */
async function info(port: number, section: string, command = 'info'): Promise<string> {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => {});
  try {
    await c.connect();
    const out = command === 'info' ? await c.info(section) : await c.cluster('INFO');
    return String(out);
  } finally {
    c.disconnect();
  }
}

/** Inside a describe: starts one cluster before the file's tests and stops it after; returns a getter for it. */
export function useRedisCluster(): () => RedisCluster {
  let cluster: RedisCluster | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });
  return () => {
    if (!cluster) throw new Error('the redis cluster has not started');
    return cluster;
  };
}
