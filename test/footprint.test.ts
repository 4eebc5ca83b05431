/**
 * What a user gets from `npm install`: the packages are packed (npm pack, as published) and
 * installed from their tarballs into scratch apps, with everything else from the npm registry.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { npmEnv, repoRoot } from './helpers/pack.js';
import {
  cleanupOwnRoot,
  expressOnly,
  expressWithLapse,
  fullApp,
  installApp,
  lib,
  packed,
  run,
  scratchRoot,
  serverPackage,
  typecheckFullApp,
  withSqlite,
} from './helpers/scratch.js';
import type { PackedPackage } from './helpers/pack.js';

const BIN = join(repoRoot, 'node_modules', '.bin');

let packs: PackedPackage[] = [];
let library: PackedPackage;

beforeAll(async () => {
  packs = await packed();
  library = lib(packs);
}, 300_000);
afterAll(() => cleanupOwnRoot());

function added(base: string[], app: string[]): string[] {
  const have = new Set(base);
  return app.filter((p) => !have.has(p));
}

describe('footprint of the packed packages', () => {
  it("(a) an Express app that adds lapse installs at most 10 packages besides express's own, and compiles nothing", async () => {
    const [base, app] = await Promise.all([expressOnly(), expressWithLapse()]);
    const extra = added(base.packages, app.packages);
    expect(base.packages.some((p) => p.startsWith('express@'))).toBe(true);
    expect(extra.some((p) => p.startsWith('lapse@'))).toBe(true);
    expect(extra.length, extra.join(' ')).toBeLessThanOrEqual(10);
    expect(app.withInstallScript).toEqual([]);
    expect(app.nativeBuilds).toEqual([]);
  }, 600_000);

  it('(b) adding better-sqlite3 enables lapse/sqlite: a store on a file keeps a session across a reopen', async () => {
    const app = await withSqlite();
    expect(app.nativeBuilds).toContain('better-sqlite3');
    const script = join(app.dir, 'sqlite-check.mjs');
    writeFileSync(
      script,
      [
        "import { existsSync } from 'node:fs';",
        "import { createStore } from 'lapse';",
        "import { sqlite } from 'lapse/sqlite';",
        "const open = () => createStore({ backend: sqlite({ path: './check.db' }), sweepInterval: false });",
        'const first = open();',
        "const { token } = await first.create({ userId: 'u1', data: { n: 1 } });",
        'await first.close();',
        'const again = open();',
        'const s = await again.validate(token);',
        'await again.close();',
        "console.log(JSON.stringify({ userId: s?.userId, data: s?.data, file: existsSync('./check.db') }));",
      ].join('\n'),
    );
    const res = await run(process.execPath, [script], app.dir, process.env, 60_000);
    expect(res.code, res.output).toBe(0);
    expect(JSON.parse(res.output.trim())).toEqual({ userId: 'u1', data: { n: 1 }, file: true });
  }, 600_000);

  it('(c) no EBADENGINE warning from installing lapse and better-sqlite3 into an Express app', async () => {
    const [base, app, sqlite] = await Promise.all([expressOnly(), expressWithLapse(), withSqlite()]);
    expect(base.install.output).not.toContain('EBADENGINE');
    expect(app.install.output).not.toContain('EBADENGINE');
    expect(sqlite.install.output).not.toContain('EBADENGINE');
  }, 600_000);

  it('(d) tsc --noEmit (nodenext, strict, skipLibCheck false) passes for a user app of each subpath', async () => {
    const [app, typecheck] = await Promise.all([fullApp(), typecheckFullApp()]);
    const subpaths = Object.keys(library.manifest.exports ?? {}).filter((k) => k !== './package.json');
    expect(subpaths).toContain('.');
    // Every subpath, plus the service package.
    const specifiers = typecheck.specifiers;
    expect(specifiers).toContain('lapse-server');
    expect(specifiers.length).toBeGreaterThanOrEqual(subpaths.length);
    // One tsc program with the README examples (test/helpers/scratch.ts); these are the subpath files' errors.
    const errors = typecheck.output.split('\n').filter((l) => l.startsWith('subpaths/'));
    expect(errors).toEqual([]);
    expect(typecheck.code, typecheck.output).toBe(0);
    // And each one loads at run time with its peers installed (one process for all).
    const code = `for (const s of ${JSON.stringify(specifiers)}) { const m = await import(s); console.log(s, Object.keys(m).length); }`;
    const loaded = await run(process.execPath, ['--input-type=module', '-e', code], app.dir, process.env, 60_000);
    expect(loaded.code, loaded.output).toBe(0);
    for (const spec of specifiers) expect(loaded.output).toMatch(new RegExp(`^${spec.replace(/[.]/g, '\\.')} [1-9]\\d*$`, 'm'));
  }, 600_000);

  it('(e) importing a subpath whose peer is missing throws LAPSE_INVALID_OPTION naming the package to install', async () => {
    expect(library.manifest.peerDependencies).toHaveProperty('ioredis');
    const dir = join(scratchRoot(), 'lapse-alone');
    await installApp(dir, packs, { lapse: 'file:' });
    const peers: Record<string, string> = {
      'lapse/sqlite': 'better-sqlite3',
      'lapse/redis': 'ioredis',
      'lapse/postgres': 'pg',
      'lapse/socket.io': 'socket.io',
    };
    for (const [spec, peer] of Object.entries(peers)) {
      const code = `try { await import('${spec}'); console.log('loaded') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`;
      const res = await run(process.execPath, ['--input-type=module', '-e', code], dir, process.env, 30_000);
      const out = JSON.parse(res.output.trim().split('\n').pop() as string) as { code: string; message: string };
      expect(out.code, spec).toBe('LAPSE_INVALID_OPTION');
      expect(out.message, spec).toContain(peer);
    }
  }, 600_000);

  it('(f) publint and @arethetypeswrong/cli (ESM-only profile) pass on every package', async () => {
    expect(packs.map((p) => p.name).sort()).toEqual(['lapse', 'lapse-server']);
    for (const p of packs) {
      const lint = await run(join(BIN, 'publint'), ['run', p.tarball, '--strict'], repoRoot, process.env, 120_000);
      expect(lint.code, `publint ${p.name}:\n${lint.output}`).toBe(0);
      expect(lint.output).toContain('All good');
      const types = await run(join(BIN, 'attw'), [p.tarball, '--profile', 'esm-only', '--no-emoji', '--no-color'], repoRoot, process.env, 120_000);
      expect(types.code, `attw ${p.name}:\n${types.output}`).toBe(0);
    }
  }, 600_000);
  it('(g) from the install: `npx lapse --version`, `npx lapse-server --version`, and `npx lapse-server serve` answers /health 200', async () => {
    const app = await fullApp();
    const { version } = serverPackage(packs).manifest;
    for (const bin of ['lapse', 'lapse-server']) {
      const res = await run('npx', ['--no-install', bin, '--version'], app.dir, npmEnv(), 60_000);
      expect(res.code, `${bin}: ${res.output}`).toBe(0);
      expect(res.output.trim().split('\n').pop(), bin).toBe(version);
    }
    // Its own process group, so that stopping it stops npx and the node it runs.
    const child = spawn('npx', ['--no-install', 'lapse-server', 'serve', '--port', '0', '--data-dir', './data-serve'], {
      cwd: app.dir,
      env: npmEnv({ LAPSE_LOG_LEVEL: 'warn' }),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      let output = '';
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`npx lapse-server serve did not listen within 60 s:\n${output}`)), 60_000);
        const onData = (d: Buffer) => {
          output += d;
          const m = /listening on (http:\/\/\S+)/.exec(output);
          if (m) {
            clearTimeout(timer);
            resolve(m[1] as string);
          }
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        child.on('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`npx lapse-server serve exited with ${code}:\n${output}`));
        });
      });
      const health = await fetch(`${url}/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });
    } finally {
      if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, 'SIGTERM');
    }
    await expect(Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))])).resolves.not.toBe('still running');
  }, 600_000);
});
