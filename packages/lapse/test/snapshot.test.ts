import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { memory } from '../src/backends/memory/memory.js';
import { ManualClock } from '../src/core/clock.js';
import type { Logger } from '../src/util/logger.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore } from '../src/core/store.js';
import { tempDir } from '../../../test/helpers/tmp.js';

const dirs: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of dirs.splice(0)) cleanup();
});
function dir(): string {
  const t = tempDir('lapse-snap-');
  dirs.push(t.cleanup);
  return t.dir;
}

describe('memory snapshots', () => {
  it('survive a restart: tokens still validate, expired sessions are dropped, fences keep growing', async () => {
    const path = join(dir(), 'sessions.snap');
    const clock = new ManualClock(2_000_000_000_000);
    const opts = { clock, sweepInterval: false as const, logger: silentLogger };
    const a = createStore({ ...opts, backend: memory({ clock, snapshot: { path } }) });
    const keep = await a.create({ userId: 'u', data: { cart: [1, 2] } });
    const short = await a.create({ userId: 'u', idleTimeout: '1m' });
    const lease = await a.lock(keep.session.id, { ttl: '1h' });
    await a.close(); // final snapshot
    expect(existsSync(path)).toBe(true);
    await clock.advance('2m');
    const b = createStore({ ...opts, backend: memory({ clock, snapshot: { path } }) });
    const back = await b.validate(keep.token);
    expect(back?.data).toEqual({ cart: [1, 2] });
    expect(back?.status).toBe('locked');
    expect(await b.validate(short.token)).toBeNull();
    expect(await b.size()).toBe(1);
    await lease.release().catch(() => {}); // lease of the closed store: irrelevant now
    const next = await b.lock((await b.create({})).session.id);
    expect(next.fence).toBeGreaterThan(lease.fence);
    await b.close();
  });

  it('a corrupt snapshot is moved aside, logged as an error, and the store starts empty', async () => {
    const d = dir();
    const path = join(d, 'sessions.snap');
    writeFileSync(path, '{"format":"lapse-snapshot","version":1,"fence":3,"count":5}\n["half');
    const errors: unknown[] = [];
    const logger: Logger = { ...silentLogger, error: (obj: object) => errors.push(obj) };
    const backend = memory({ snapshot: { path }, logger });
    expect(backend.count(Date.now())).toBe(0);
    const aside = readdirSync(d).filter((f) => f.startsWith('sessions.snap.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(d, aside[0] as string), 'utf8')).toContain('["half');
    expect(existsSync(path)).toBe(false);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path });
    await backend.close();
    expect(existsSync(path)).toBe(true); // the new, valid snapshot
  });

  it('a process killed with SIGKILL mid-write leaves the previous or the new complete snapshot', async () => {
    const d = dir();
    const path = join(d, 'sessions.snap');
    const fixture = new URL('./fixtures/snapshot-writer.ts', import.meta.url).pathname;
    let lastCount = -1;
    for (let round = 0; round < 8; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', fixture, path], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
        child.on('exit', (c) => reject(new Error(`writer exited early (${c})`)));
      });
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 400));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      // Open a copy so that the check itself never moves the file aside.
      const copy = join(d, `check-${round}.snap`);
      copyFileSync(path, copy);
      const errors: unknown[] = [];
      const backend = memory({ snapshot: { path: copy, interval: '1h' }, logger: { ...silentLogger, error: (o: object) => errors.push(o) } });
      expect(errors).toEqual([]);
      const count = backend.count(Date.now());
      expect(count).toBeGreaterThan(0);
      // Complete: sessions k0..k(count-1), every one of them, nothing else.
      const page = backend.scan(null, count + 10, Date.now());
      expect(page.length).toBe(count);
      const ns = page.map((r) => Number(r.id.slice(1))).sort((x, y) => x - y);
      expect(ns[0]).toBe(0);
      expect(ns[ns.length - 1]).toBe(count - 1);
      lastCount = count;
      // The next round starts from this snapshot and grows it.
      (backend as unknown as { snapshot: undefined }).snapshot = undefined;
      await backend.close();
    }
    expect(lastCount).toBeGreaterThan(0);
  }, 90_000);
});
