/**
 * Lapse on one redis-server next to Lapse on a 3-master Redis Cluster (3 replicas), same
 * machine: validate and create at 50 concurrent callers, in alternating rounds (median of 5).
 * For the cluster, each master's share of the commands (INFO commandstats) and of the Redis
 * CPU (INFO cpu) during those runs; for both, Node's CPU µs per operation.
 * Run: npm run build && flock /tmp/lapse-bench.lock node --import tsx bench/redis-cluster.ts
 */
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { redis } from '../packages/lapse/dist/backends/redis/backend.js';
import { silentLogger } from '../packages/lapse/dist/util/logger.js';
import { createStore } from '../packages/lapse/dist/core/store.js';
import { startRedisCluster } from '../test/helpers/redis-cluster.js';
import { startRedis } from '../test/helpers/redis-server.js';
import { alternate, concurrent, type OpsResult, writeResults } from './lib.js';

const MS = 1000;
const ROUNDS = 5;
const CALLERS = 50;
const TOKENS = 3000;
const USERS = 500;
const DATA = { userName: 'alice@example.com', roles: ['user', 'editor'], cart: [101, 202, 303], theme: 'dark' };

interface NodeLoad {
  calls: number;
  cpuSec: number;
}

/** Commands served (sum of cmdstat calls, INFO and CONFIG left out) and CPU seconds used by one node so far. */
async function loadOf(c: Redis): Promise<NodeLoad> {
  const stats = await c.info('commandstats');
  let calls = 0;
  for (const m of stats.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) if (!/^(info|config)/.test(m[1] as string)) calls += Number(m[2]);
  const cpu = await c.info('cpu');
  const n = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(cpu)?.[1] ?? 0);
  return { calls, cpuSec: n('used_cpu_user') + n('used_cpu_sys') };
}

const single = await startRedis();
const cluster = await startRedisCluster();
const masterPorts = await cluster.masters();
const masters = masterPorts.map((port) => new Redis({ host: '127.0.0.1', port }));
const one = createStore({ backend: redis({ url: single.url, prefix: 'bench:', logger: silentLogger }), sweepInterval: false, logger: silentLogger, idleTimeout: '30m' });
const sharded = createStore({
  backend: redis({ cluster: cluster.urls, prefix: 'bench:', logger: silentLogger }),
  sweepInterval: false,
  logger: silentLogger,
  idleTimeout: '30m',
});
try {
  const tokensOf = async (store: typeof one): Promise<string[]> => {
    const out: string[] = [];
    for (let i = 0; i < TOKENS; i += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, (_, k) => store.create({ userId: `user${(i + k) % USERS}`, data: DATA })));
      out.push(...batch.map((b) => b.token));
    }
    return out;
  };
  const tokens = { one: await tokensOf(one), sharded: await tokensOf(sharded) };
  const pick = (list: string[], i: number): string => list[i % list.length] as string;

  const rows: Record<string, string | number>[] = [];
  const shares: string[] = [];
  let worstShare = 0;
  for (const [op, fn] of [
    ['validate', (store: typeof one, list: string[]) => (i: number) => store.validate(pick(list, i))],
    ['create', (store: typeof one) => (i: number) => store.create({ userId: `user${i % USERS}`, data: DATA })],
  ] as const) {
    const before = await Promise.all(masters.map(loadOf));
    const rounds: Record<'cluster' | 'single', OpsResult[]> = { cluster: [], single: [] };
    const kept = async (side: 'cluster' | 'single', p: Promise<OpsResult>) => {
      const x = await p;
      rounds[side].push(x);
      return x;
    };
    const r = await alternate(
      ROUNDS,
      () => kept('cluster', concurrent(`cluster ${op}`, fn(sharded, tokens.sharded), CALLERS, MS)),
      () => kept('single', concurrent(`single ${op}`, fn(one, tokens.one), CALLERS, MS)),
    );
    const after = await Promise.all(masters.map(loadOf));
    const calls = after.map((a, i) => a.calls - (before[i] as NodeLoad).calls);
    const cpu = after.map((a, i) => a.cpuSec - (before[i] as NodeLoad).cpuSec);
    const total = calls.reduce((a, b) => a + b, 0);
    const cpuTotal = cpu.reduce((a, b) => a + b, 0);
    const share = calls.map((c) => c / total);
    worstShare = Math.max(worstShare, ...share);
    shares.push(
      `${op}: commands per master ${share.map((s) => `${(s * 100).toFixed(1)} %`).join(' / ')} (${total} commands); Redis CPU per master ${cpu
        .map((c) => `${((c / cpuTotal) * 100).toFixed(1)} %`)
        .join(' / ')} (${cpuTotal.toFixed(2)} s)`,
    );
    const spread = (list: OpsResult[], f: (x: OpsResult) => number, digits: number) => {
      const v = list.map(f).sort((a, b) => a - b);
      return `${(v[0] ?? 0).toFixed(digits)}–${(v[v.length - 1] ?? 0).toFixed(digits)}`;
    };
    const row = (who: string, x: OpsResult, list: OpsResult[]) => ({
      op,
      backend: who,
      'ops/s (median)': Math.round(x.opsPerSec),
      'ops/s (min–max)': spread(list, (y) => y.opsPerSec, 0),
      'Node CPU µs/op (median round)': (x.cpuUsPerOp ?? 0).toFixed(1),
      'CPU µs/op (min–max)': spread(list, (y) => y.cpuUsPerOp ?? 0, 1),
    });
    rows.push(
      { ...row('1 redis-server', r.b, rounds.single), 'cluster / single': '' },
      { ...row('3-master cluster', r.a, rounds.cluster), 'cluster / single': r.ratio.toFixed(2) },
    );
  }
  writeResults('redis-cluster', 'Lapse on one redis-server vs on a 3-master Redis Cluster (same machine)', rows, [
    `redis-server ${(await masters[0]?.info('server'))?.match(/redis_version:(\S+)/)?.[1]} on 127.0.0.1. Cluster: 3 masters + 3 replicas (redis-cli --cluster create --cluster-replicas 1), all on this machine; the single server and the cluster run side by side, in ${ROUNDS} alternating rounds of ${MS} ms at ${CALLERS} concurrent callers; ops/s are each side's median round, the ratio the median per-round ratio.`,
    'INFO commandstats counts the commands a Lua script runs too (a create is one EVALSHA plus its ZADD, SET, INCR… inside), so the create figures count those.',
    `validate = one GET on the session's bucket; create = one Lua script in the user's bucket (the ${USERS} users' buckets spread over the masters). Sessions carry ${JSON.stringify(DATA).length} bytes of JSON data.`,
    ...shares,
    `Target: no master over 40 % of the commands -> highest share ${(worstShare * 100).toFixed(1)} %: ${worstShare <= 0.4 ? 'met' : 'NOT met'}.`,
    `Shared 2-core machine (other helpers' work running at the same time), load average ${loadavg()[0]?.toFixed(1)} at the end: six redis-servers and Node share 2 cores, so the cluster cannot show its scale-out here; what it shows is the spread of work and the client's cost per op.`,
  ]);
} finally {
  await one.close();
  await sharded.close();
  for (const m of masters) m.disconnect();
  await cluster.stop();
  await single.stop();
}
