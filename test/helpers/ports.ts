import { randomInt } from 'node:crypto';
import { createServer } from 'node:net';

/**
 * Ports for the servers tests start and stop (redis-server, PostgreSQL, Redis Cluster nodes).
 *
 * They are drawn below Linux's ephemeral range (32768 and up), so no server listening on port 0
 * and no outgoing connection is ever given one; and from one slice of the range per vitest
 * worker, so two test files running at once never draw the same port. Together: a port a test
 * freed by killing its server (to restart it, or to watch its clients fail while they keep
 * reconnecting) is not taken meanwhile by another file's server, whose answers (a GET finding
 * no key) would read as "no session" where the test expects "backend down".
 */
export interface PortRange {
  from: number;
  to: number;
}

/** Slices per range: vitest runs at most 2 files at once here (maxWorkers), with room to spare. */
const SLICES = 4;

/** This worker's slice of `range` (VITEST_POOL_ID counts workers from 1; outside vitest, the first slice). */
export function workerSlice(range: PortRange, worker = Number(process.env.VITEST_POOL_ID ?? 1)): PortRange {
  const size = Math.floor((range.to - range.from) / SLICES);
  const index = ((Number.isSafeInteger(worker) && worker > 0 ? worker : 1) - 1) % SLICES;
  const from = range.from + index * size;
  return { from, to: from + size };
}

/** Standalone servers (redis-server, PostgreSQL): 23000-29999, between the cluster nodes and their bus ports. */
export const SERVER_PORTS: PortRange = workerSlice({ from: 23_000, to: 30_000 });

/** Whether `port` on 127.0.0.1 can be bound now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A port of `range` that is free now and passes `ok` (say, its cluster bus port is free too), none of `taken`. */
export async function freePortIn(range: PortRange, taken: readonly number[] = [], ok: (port: number) => Promise<boolean> = async () => true): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = randomInt(range.from, range.to);
    if (taken.includes(port)) continue;
    if ((await portFree(port)) && (await ok(port))) return port;
  }
  throw new Error(`no free port in ${range.from}-${range.to} after 200 tries`);
}
