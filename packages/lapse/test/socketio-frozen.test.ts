import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { silentLogger } from '../src/util/logger.js';
import { trackConnections } from '../src/socket.io/index.js';
import { killFixtures, spawnFixture, startServer } from './fixtures/socketio-harness.js';

const CLIENT = join(import.meta.dirname, 'fixtures/socketio-client.ts');
const PING_INTERVAL = 300;
const PING_TIMEOUT = 300;
const SWEEP = 200;
// Room for a busy two-core machine to run the timers; the bound itself is the sum above.
const SCHEDULING_GRACE = 1000;

afterEach(killFixtures);

it('a client frozen with SIGSTOP is removed within pingInterval + pingTimeout + one sweep', { timeout: 30_000 }, async () => {
  const server = await startServer({ pingInterval: PING_INTERVAL, pingTimeout: PING_TIMEOUT });
  const tracker = trackConnections(server.io, { sweepInterval: SWEEP, logger: silentLogger });
  try {
    const { child, first } = await spawnFixture<{ sid: string }>(CLIENT, [server.url]);
    const frozen = { child, sid: first.sid };
    const alive = await server.connected();
    expect(tracker.get(frozen.sid)).not.toBeNull();

    const bound = PING_INTERVAL + PING_TIMEOUT + SWEEP;
    const removed = new Promise<{ reason: string; at: number } | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), bound + SCHEDULING_GRACE);
      tracker.on('disconnected', (conn, reason) => {
        if (conn.sid !== frozen.sid) return;
        clearTimeout(timer);
        resolve({ reason, at: Date.now() });
      });
    });
    const frozenAt = Date.now();
    frozen.child.kill('SIGSTOP');
    const gone = await removed;
    expect(gone, `still tracked ${bound + SCHEDULING_GRACE} ms after SIGSTOP`).not.toBeNull();
    expect(gone?.reason).toBe('ping timeout');
    expect((gone?.at ?? Number.POSITIVE_INFINITY) - frozenAt).toBeLessThanOrEqual(bound + SCHEDULING_GRACE);
    expect(tracker.get(frozen.sid)).toBeNull();
    // The live client answers pings and stays.
    expect(tracker.get(alive.id as string)).not.toBeNull();
    expect(tracker.stats().totalSessions).toBe(1);
  } finally {
    // A frozen peer would hold the server's close open: end it first.
    killFixtures();
    await tracker.close();
    await server.close();
  }
});
