import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sqlite } from 'lapse/sqlite';
import { runCli } from '../src/cli/program.js';
import { ManualClock } from 'lapse/internal';
import { progress } from '../src/cli/progress.js';
import { silentLogger } from 'lapse/internal';
import { createStore, type SessionStore } from 'lapse/internal';
import { tempDir } from '../../../test/helpers/tmp.js';

let dir: string;
let cleanup: () => void;

beforeEach(() => {
  ({ dir, cleanup } = tempDir('lapse-cli-'));
});
afterEach(() => cleanup());

async function lapse(args: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {}) {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    stdin: Readable.from(opts.stdin === undefined ? [] : [opts.stdin]),
    env: { LAPSE_DATA_DIR: join(dir, 'data'), ...opts.env },
  });
  return { code, out, err };
}

/** A store on the same SQLite file the CLI uses by default; `ago` puts its clock in the past. */
function openDb(path = join(dir, 'data', 'lapse.db'), ago = 0): SessionStore {
  const clock = ago ? new ManualClock(Date.now() - ago) : undefined;
  return createStore({ backend: sqlite({ path, ...(clock ? { clock } : {}) }), logger: silentLogger, sweepInterval: false, ...(clock ? { clock } : {}) });
}

describe('lapse keys', () => {
  it('creates (printed once), lists and revokes app keys', async () => {
    const made = await lapse(['keys', 'create', '--name', 'web', '--json']);
    expect(made.code).toBe(0);
    const { key, id } = JSON.parse(made.out);
    expect(key).toMatch(/^lapse_app_/);
    const file = readFileSync(join(dir, 'data', 'keys.json'), 'utf8');
    expect(file).not.toContain(key);
    expect(statSync(join(dir, 'data', 'keys.json')).mode & 0o777).toBe(0o600);
    const list = await lapse(['keys', 'list', '--json']);
    expect(JSON.parse(list.out)).toEqual([expect.objectContaining({ id, name: 'web', kind: 'app', revokedAt: null })]);
    expect(list.out).not.toContain('hash');
    const human = await lapse(['keys', 'list']);
    expect(human.out).toMatch(/^id\s+name\s+kind/m);
    expect(human.out).toContain('web');
    expect((await lapse(['keys', 'revoke', 'web'])).code).toBe(0);
    expect(JSON.parse((await lapse(['keys', 'list', '--json'])).out)).toEqual([]);
    expect(JSON.parse((await lapse(['keys', 'list', '--all', '--json'])).out)).toHaveLength(1);
    const again = await lapse(['keys', 'revoke', 'web']);
    expect(again.code).toBe(1);
    expect(again.err).toContain("no active key 'web'");
  });
});

describe('lapse sessions / users', () => {
  it('lists, shows and revokes sessions on the data folder', async () => {
    const store = openDb();
    const a = await store.create({ userId: 'alice', data: { n: 1 } });
    const b = await store.create({ userId: 'alice' });
    const c = await store.create({ userId: 'bob' });
    await store.close();

    const list = await lapse(['sessions', 'list', '--json', '--limit', '2']);
    expect(list.code).toBe(0);
    const page = JSON.parse(list.out);
    expect(page.sessions).toHaveLength(2);
    const rest = JSON.parse((await lapse(['sessions', 'list', '--json', '--cursor', page.cursor])).out);
    expect([...page.sessions, ...rest.sessions].map((s: { id: string }) => s.id).sort()).toEqual([a, b, c].map((x) => x.session.id).sort());
    expect((await lapse(['sessions', 'list'])).out).toContain(a.session.id);

    const show = await lapse(['sessions', 'show', '--json', '--', a.session.id]);
    expect(JSON.parse(show.out)).toMatchObject({ id: a.session.id, userId: 'alice', data: { n: 1 } });
    expect((await lapse(['sessions', 'show', 'nope'])).code).toBe(1);

    const users = JSON.parse((await lapse(['users', 'sessions', 'alice', '--json'])).out);
    expect(users.map((s: { id: string }) => s.id).sort()).toEqual([a.session.id, b.session.id].sort());

    // '--' before ids: a base64url id may start with '-' (one in 64), which reads as an option.
    expect((await lapse(['sessions', 'revoke', '--', c.session.id])).out).toContain(`revoked ${c.session.id}`);
    expect((await lapse(['sessions', 'revoke', '--', c.session.id])).code).toBe(1);
    const dashed = await lapse(['sessions', 'revoke', '-dYxREnKAP-Y01ze3kF5yQ']);
    expect(dashed.code).toBe(2);
    expect(dashed.err).toContain("an id that starts with '-' goes after '--'");
    // An option's value may start with '-'.
    expect((await lapse(['users', 'revoke', 'nobody', '--except', '-dYxREnKAP-Y01ze3kF5yQ'])).out).toContain('revoked 0 sessions of nobody');
    const revoked = await lapse(['users', 'revoke', 'alice', '--except', a.session.id]);
    expect(revoked.out).toContain('revoked 1 session of alice');

    const check = openDb();
    expect(await check.validate(a.token)).not.toBeNull();
    expect(await check.validate(b.token)).toBeNull();
    expect(await check.validate(c.token)).toBeNull();
    await check.close();
  });

  it('sweeps expired sessions and runs jobs', async () => {
    const old = openDb(undefined, 2 * 3600_000);
    for (let i = 0; i < 3; i++) await old.create({ userId: 'x', idleTimeout: '1h' });
    await old.close();
    const fresh = openDb();
    await fresh.create({ userId: 'y' });
    await fresh.close();

    const sweep = await lapse(['sweep', '--json']);
    expect(sweep.code).toBe(0);
    expect(JSON.parse(sweep.out)).toEqual({ expired: 3 });
    // A listing of this process's own jobs would show runs: 0 whatever the service did: refused.
    const local = await lapse(['jobs', 'list', '--json']);
    expect(local.code).toBe(2);
    expect(local.err).toContain('--url');
    const run = await lapse(['jobs', 'run', 'session_cleanup', '--json']);
    expect(JSON.parse(run.out)).toMatchObject({ id: 'session_cleanup', result: { deleted: 0 } });
    expect((await lapse(['jobs', 'run', 'nope'])).code).toBe(1);
  });
});

describe('lapse export / import', () => {
  it('round-trips sessions with their secret hashes, so tokens stay valid', async () => {
    const store = openDb();
    const made = [];
    for (let i = 0; i < 7; i++) made.push(await store.create({ userId: `u${i % 3}`, data: { i } }));
    await store.close();

    const file = join(dir, 'dump.jsonl');
    const exp = await lapse(['export', '-o', file]);
    expect(exp.code).toBe(0);
    expect(exp.err).toContain('exported 7 sessions');
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(JSON.parse(lines[0] as string)).toMatchObject({ format: 'lapse-export', version: 1, count: 7 });
    expect(lines).toHaveLength(8);
    for (const m of made) expect(readFileSync(file, 'utf8')).not.toContain(m.token.split('.')[1]);

    const target = join(dir, 'other', 'lapse.db');
    const imp = await lapse(['import', file, '--backend', `sqlite:${target}`, '--json']);
    expect(imp.code).toBe(0);
    expect(JSON.parse(imp.out)).toEqual({ imported: 7, skipped: 0, expired: 0 });
    const again = await lapse(['import', '-', '--backend', `sqlite:${target}`, '--json'], { stdin: readFileSync(file, 'utf8') });
    expect(JSON.parse(again.out)).toEqual({ imported: 0, skipped: 7, expired: 0 });
    const replaced = await lapse(['import', file, '--backend', `sqlite:${target}`, '--replace', '--json']);
    expect(JSON.parse(replaced.out)).toEqual({ imported: 7, skipped: 0, expired: 0 });

    const moved = openDb(target);
    for (const m of made) expect((await moved.validate(m.token))?.data).toEqual(m.session.data);
    await moved.close();
  });

  it('stops at a line that is not a session record, naming it', async () => {
    const file = join(dir, 'bad.jsonl');
    writeFileSync(file, '{"id":"x"}\n');
    const r = await lapse(['import', file]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('line 1: not a Lapse session record');
  });
});

describe('progress', () => {
  it('draws a bar on a terminal and nothing elsewhere', () => {
    let tty = '';
    const bar = progress({ label: 'export', total: 200, stream: { isTTY: true, columns: 80, write: (s: string) => (tty += s) } });
    bar.update(50);
    bar.finish('done');
    expect(tty).toContain('export [');
    expect(tty).toContain('25% 50/200');
    expect(tty.endsWith('done\n')).toBe(true);
    let pipe = '';
    const quiet = progress({ label: 'export', total: 200, stream: { isTTY: false, write: (s: string) => (pipe += s) } });
    quiet.update(50);
    quiet.finish('done');
    expect(pipe).toBe('');
    let spin = '';
    progress({ label: 'sweep', stream: { isTTY: true, write: (s: string) => (spin += s) }, unit: 'removed' }).update(7);
    expect(spin).toMatch(/sweep [|/\\-] 7 removed/);
  });
});

describe('lapse jobs list --url', () => {
  it("lists a running service's jobs, and reports 401 and 404 as themselves", async () => {
    const { createServer } = await import('../src/server/index.js');
    const server = await createServer({ backend: 'memory', dataDir: join(dir, 'srv'), logLevel: 'silent', liveConnections: false });
    await server.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(server.server.address() as { port: number }).port}`;
    try {
      await server.inject({ method: 'POST', url: '/v1/jobs/session_cleanup/run', headers: { authorization: `Bearer ${server.lapse.generatedAdminKey}` } });
      const ok = await lapse(['jobs', 'list', '--url', url, '--json'], { env: { LAPSE_ADMIN_KEY: server.lapse.generatedAdminKey as string } });
      expect(ok.code).toBe(0);
      // The run above, plus the scheduled one when the test crosses the job's minute boundary.
      const jobs = JSON.parse(ok.out) as { id: string; runs: number }[];
      expect(jobs.map((j) => j.id)).toEqual(['session_cleanup']);
      expect(jobs[0]?.runs).toBeGreaterThanOrEqual(1);
      const badKey = await lapse(['jobs', 'list', '--url', url], { env: { LAPSE_ADMIN_KEY: 'lapse_admin_wrong' } });
      expect(badKey.code).toBe(1);
      expect(badKey.err).toContain('LAPSE_UNAUTHORIZED');
      const noJob = await lapse(['jobs', 'run', 'nope', '--url', url], { env: { LAPSE_ADMIN_KEY: server.lapse.generatedAdminKey as string } });
      expect(noJob.err).toContain('LAPSE_NOT_FOUND');
      const wrongPath = await lapse(['jobs', 'list', '--url', `${url}/nothing-here`], { env: { LAPSE_ADMIN_KEY: server.lapse.generatedAdminKey as string } });
      expect(wrongPath.err).toContain('LAPSE_NOT_FOUND');
    } finally {
      await server.close();
    }
  });
});

describe('the built binary in a pipe', () => {
  const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
  const sh = (script: string, env: NodeJS.ProcessEnv = {}) =>
    spawnSync('/bin/sh', ['-c', script], { env: { PATH: process.env.PATH, LAPSE_DATA_DIR: join(dir, 'data'), ...env }, encoding: 'utf8', timeout: 60_000 });

  it('prints its version', () => {
    const r = sh(`"${process.execPath}" "${CLI}" --version`);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')).version);
  });

  it('stops quietly when the reader of its output stops', async () => {
    const help = sh(`"${process.execPath}" "${CLI}" serve --help | head -1`);
    expect(help.stdout).toContain('Usage');
    expect(help.stderr).toBe('');
    const store = openDb();
    // Far more than a pipe holds, so export is still writing when head goes.
    for (let i = 0; i < 3000; i++) await store.create({ userId: `u${i % 50}`, data: { pad: 'x'.repeat(1000) } });
    await store.close();
    const out = sh(`"${process.execPath}" "${CLI}" export | head -c 100 > /dev/null`);
    expect(out.stderr).toBe('');
  });
});

describe('usage', () => {
  it('gives --help with an example for every command', async () => {
    const commands = [['serve'], ['sessions', 'list'], ['sessions', 'show'], ['sessions', 'revoke'], ['users', 'sessions'], ['users', 'revoke'], ['sweep'], ['jobs', 'list'], ['jobs', 'run'], ['keys', 'create'], ['keys', 'list'], ['keys', 'revoke'], ['export'], ['import']];
    for (const c of commands) {
      const r = await lapse([...c, '--help']);
      expect(r.code, c.join(' ')).toBe(0);
      expect(r.out, c.join(' ')).toContain('Example:');
    }
    const serve = (await lapse(['serve', '--help'])).out;
    for (const env of ['LAPSE_HOST', 'LAPSE_PORT', 'LAPSE_BACKEND', 'LAPSE_DATA_DIR', 'LAPSE_ADMIN_KEY', 'LAPSE_CONFIG']) expect(serve).toContain(env);
  });

  it('exits 2 with a clear message for bad usage and unusable configuration', async () => {
    const unknown = await lapse(['sessions', 'frobnicate']);
    expect(unknown.code).toBe(2);
    const mem = await lapse(['sessions', 'list', '--backend', 'memory']);
    expect(mem.code).toBe(2);
    expect(mem.err).toContain('memory backend lives inside');
    const missing = await lapse(['sessions', 'list']);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('no database at');
    const badEnv = await lapse(['serve'], { env: { LAPSE_PORT: 'x' } });
    expect(badEnv.code).toBe(2);
    expect(badEnv.err).toContain('LAPSE_PORT');
  });
});
