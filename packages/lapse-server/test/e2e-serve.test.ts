import { type ChildProcess, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ensureBuilt, serve } from '../../../test/helpers/serve-process.js';
import { tempDir } from '../../../test/helpers/tmp.js';

let tmp: { dir: string; cleanup: () => void };
const children: ChildProcess[] = [];

beforeAll(() => {
  ensureBuilt();
  tmp = tempDir('lapse-e2e-');
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  tmp?.cleanup();
});

describe('lapse serve (built CLI, real HTTP, SQLite)', () => {
  it('prints the admin key once, serves sessions, survives a restart and shuts down cleanly on SIGTERM', async () => {
    const first = await serve(tmp.dir);
    children.push(first.child);
    const adminKey = /(lapse_admin_[A-Za-z0-9_-]{43})/.exec(first.stdout)?.[1];
    expect(adminKey, first.stdout).toBeDefined();
    expect(existsSync(join(tmp.dir, 'data', 'lapse.db'))).toBe(true);
    expect(statSync(join(tmp.dir, 'data', 'keys.json')).mode & 0o777).toBe(0o600);

    const headers = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
    const post = (base: string, path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });

    const health = await fetch(`${first.url}/health`, { headers });
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', backend: 'sqlite' });
    // Public for probes, and then it says only up or down.
    const open = await fetch(`${first.url}/health`);
    expect(open.status).toBe(200);
    expect(await open.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${first.url}/metrics`)).status).toBe(401);

    const created = await post(first.url, '/v1/sessions', { userId: 'alice', data: { plan: 'pro' } });
    expect(created.status).toBe(201);
    const { token } = (await created.json()) as { token: string };
    const valid = await post(first.url, '/v1/sessions/validate', { token });
    expect(valid.status).toBe(200);

    // SIGTERM while requests are in flight: each one answered 201 must survive.
    const inflight = Array.from({ length: 40 }, (_, i) =>
      post(first.url, '/v1/sessions', { userId: `u${i}`, data: { i } })
        .then(async (r) => (r.status === 201 ? ((await r.json()) as { token: string }).token : null))
        .catch(() => null),
    );
    await Promise.race(inflight);
    first.child.kill('SIGTERM');
    const tokens = (await Promise.all(inflight)).filter((t): t is string => t !== null);
    expect(await first.exited).toBe(0);
    expect(tokens.length).toBeGreaterThan(0);

    const second = await serve(tmp.dir);
    children.push(second.child);
    expect(second.stdout).not.toMatch(/lapse_admin_/);
    for (const t of [token, ...tokens]) {
      const r = await post(second.url, '/v1/sessions/validate', { token: t });
      expect(r.status).toBe(200);
    }
    const again = (await (await post(second.url, '/v1/sessions/validate', { token })).json()) as { session: { data: unknown; userId: string } };
    expect(again.session).toMatchObject({ userId: 'alice', data: { plan: 'pro' } });
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);

    // The management commands, as real processes on the same data folder: they finish their
    // work (closing SQLite waits for its checkpoint worker) and exit 0.
    const env = { PATH: process.env.PATH };
    const list = spawnSync(process.execPath, [CLI, 'sessions', 'list', '--json', '--limit', '1000'], { cwd: tmp.dir, env, encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).sessions).toHaveLength(1 + tokens.length);
    const keys = spawnSync(process.execPath, [CLI, 'keys', 'list', '--json'], { cwd: tmp.dir, env, encoding: 'utf8' });
    expect(JSON.parse(keys.stdout)).toEqual([expect.objectContaining({ name: 'admin', kind: 'admin' })]);
  });

  it('uses LAPSE_ADMIN_KEY instead of making a key, and runs on the memory backend', async () => {
    const dir = join(tmp.dir, 'mem');
    const adminKey = 'an-operator-chosen-admin-key-for-tests';
    const s = await serve(tmp.dir, { LAPSE_ADMIN_KEY: adminKey, LAPSE_BACKEND: 'memory', LAPSE_DATA_DIR: dir });
    children.push(s.child);
    expect(s.stdout).not.toMatch(/lapse_admin_/);
    const r = await fetch(`${s.url}/health`, { headers: { authorization: `Bearer ${adminKey}` } });
    expect(await r.json()).toMatchObject({ status: 'ok', backend: 'memory' });
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
  });

  it('refuses a bad configuration with exit code 2 and a message naming the variable', () => {
    const r = spawnSync(process.execPath, [CLI, 'serve'], { cwd: tmp.dir, env: { PATH: process.env.PATH, LAPSE_PORT: 'eighty' }, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('LAPSE_PORT must be a port number');
  });
});
