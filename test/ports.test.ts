import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePortIn, SERVER_PORTS, workerSlice } from './helpers/ports.js';
import { NODE_PORTS } from './helpers/redis-cluster.js';

describe('test server ports', () => {
  it('gives each worker its own slice, below the ephemeral range', () => {
    const range = { from: 23_000, to: 30_000 };
    const slices = [1, 2, 3, 4].map((w) => workerSlice(range, w));
    for (const [i, s] of slices.entries()) {
      expect(s.from).toBeGreaterThanOrEqual(range.from);
      expect(s.to).toBeLessThanOrEqual(range.to);
      for (const other of slices.slice(i + 1)) expect(s.to <= other.from || other.to <= s.from).toBe(true);
    }
    // Cluster nodes, their bus ports (+10000) and standalone servers never overlap, and none is ephemeral.
    expect(NODE_PORTS.to + 10_000).toBeLessThanOrEqual(32_768);
    expect(NODE_PORTS.from).toBeGreaterThanOrEqual(20_000);
    expect(NODE_PORTS.to).toBeLessThanOrEqual(23_000);
    expect(SERVER_PORTS.from).toBeGreaterThanOrEqual(23_000);
    expect(SERVER_PORTS.to).toBeLessThanOrEqual(30_000);
  });

  it('draws a port of the range that is free, skipping the taken and the busy', async () => {
    const port = await freePortIn(SERVER_PORTS);
    expect(port).toBeGreaterThanOrEqual(SERVER_PORTS.from);
    expect(port).toBeLessThan(SERVER_PORTS.to);
    const one = { from: port, to: port + 1 };
    await expect(freePortIn(one, [port])).rejects.toThrow(/no free port/);
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(port, '127.0.0.1', r));
    try {
      await expect(freePortIn(one)).rejects.toThrow(/no free port/);
    } finally {
      await new Promise((r) => busy.close(r));
    }
    expect(await freePortIn(one)).toBe(port);
  });
});
