/**
 * Every fenced TypeScript example of README.md and docs/integrations.md runs as it is: each
 * is saved in a scratch ESM app that installed the packed packages from their tarballs (and
 * the frameworks from the npm registry), type-checked on its own with `tsc --noEmit`
 * (nodenext, strict, skipLibCheck false), then run against real parts and driven over HTTP
 * and Socket.IO. Examples marked ```ts fragment are not programs and are not run.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { io as connectClient } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Example, extractExamples, type Program, startProgram, waitForOutput } from './helpers/examples.js';
import { repoRoot } from './helpers/pack.js';
import { cleanupOwnRoot, EXAMPLE_DOCS, exampleFile, fullApp, programExamples, type Typecheck, typecheckFullApp } from './helpers/scratch.js';

const examples = EXAMPLE_DOCS.flatMap((doc) => extractExamples(repoRoot, doc));
const programs = programExamples();
const TSX = import.meta.resolve('tsx');

let appDir = '';
const children: Program[] = [];
afterAll(async () => {
  await Promise.all(children.splice(0).map((c) => c.kill()));
  cleanupOwnRoot();
});

let typecheck: Typecheck;
beforeAll(async () => {
  appDir = (await fullApp()).dir;
  typecheck = await typecheckFullApp(); // also writes the examples into the app
}, 900_000);

function folderOf(e: Example): string {
  return join(appDir, exampleFile(e), '..');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function byTitle(doc: string, title: string): Example {
  const e = programs.find((x) => x.doc === doc && x.title === title);
  if (!e) throw new Error(`${doc} has no example titled ${title}`);
  return e;
}

function start(e: Example, env: NodeJS.ProcessEnv = {}): Program {
  const p = startProgram(['--import', TSX, e.title as string], folderOf(e), env);
  children.push(p);
  return p;
}

/** Starts a server example on a free port and waits for its "listening on <url>" line. */
async function startServer(e: Example, env: NodeJS.ProcessEnv = {}): Promise<{ p: Program; base: string }> {
  const port = await freePort();
  const p = start(e, { PORT: String(port), ...env });
  const m = await waitForOutput(p, /listening on (http:\/\/\S+)/);
  expect(m[1]).toContain(String(port));
  return { p, base: (m[1] as string).replace(/\/$/, '').replace('localhost', '127.0.0.1') };
}

/** Runs a program to its end (bounded) and gives its exit code and output. */
async function runToEnd(e: Example, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  const p = start(e, env);
  const timer = setTimeout(() => void p.kill(), 30_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, output: p.output() };
}

function cookie(res: Response, name: string): string {
  const raw = res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`));
  if (!raw) throw new Error(`no ${name} cookie in ${res.status} ${res.url}`);
  return raw.split(';')[0] as string;
}

/** What each example is checked for, by document and title. */
const drivers: Record<string, (e: Example) => Promise<void>> = {
  'README.md#app.ts': async (e) => {
    const { base } = await startServer(e);
    expect((await fetch(`${base}/devices`)).status).toBe(401);
    const laptop = cookie(await fetch(`${base}/login`, { method: 'POST', headers: { 'user-agent': 'laptop' } }), 'lapse_session');
    const phone = cookie(await fetch(`${base}/login`, { method: 'POST', headers: { 'user-agent': 'phone' } }), 'lapse_session');
    const devices = await fetch(`${base}/devices`, { headers: { cookie: laptop } });
    expect(devices.status).toBe(200);
    const list = (await devices.json()) as { userAgent: string }[];
    expect(list.map((d) => d.userAgent).sort()).toEqual(['laptop', 'phone']);
    const out = await fetch(`${base}/logout-everywhere`, { method: 'POST', headers: { cookie: laptop } });
    expect(await out.json()).toEqual({ revoked: 1 });
    expect((await fetch(`${base}/devices`, { headers: { cookie: phone } })).status).toBe(401);
    expect(await (await fetch(`${base}/devices`, { headers: { cookie: laptop } })).json()).toHaveLength(1);
    expect(existsSync(join(folderOf(e), 'sessions.db'))).toBe(true);
  },

  'README.md#in-process.ts': async (e) => {
    const { code, output } = await runToEnd(e);
    expect(code, output).toBe(0);
    expect(output).toContain("cart:42 { items: [ 'sword' ] }");
    expect(output).toMatch(/^1 \{/m);
    expect(existsSync(join(folderOf(e), 'sessions.snap'))).toBe(true);
  },

  'README.md#game-server.ts': async (e) => {
    const { base } = await startServer(e);
    // Without a token the handshake is refused.
    const anonymous = connectClient(base, { transports: ['websocket'], reconnection: false });
    const refused = await new Promise<string>((resolve) => anonymous.once('connect_error', (err) => resolve(err.message)));
    anonymous.close();
    expect(refused).toBe('LAPSE_UNAUTHORIZED');
    // POST /login gives a token; with it the socket connects and is in the lobby.
    const { token } = (await (await fetch(`${base}/login`, { method: 'POST' })).json()) as { token: string };
    const player = connectClient(base, { transports: ['websocket'], reconnection: false, auth: { token } });
    try {
      await new Promise<void>((resolve, reject) => {
        player.once('connect', () => resolve());
        player.once('connect_error', reject);
      });
      const inLobby = (await player.timeout(5_000).emitWithAck('who')) as string[];
      expect(inLobby).toHaveLength(1);
      expect(inLobby[0]).toMatch(/^player-\d+$/);
    } finally {
      player.close();
    }
  },

  'README.md#game-client.ts': async (e) => {
    const { base } = await startServer(byTitle('README.md', 'game-server.ts'));
    const { code, output } = await runToEnd(e, { GAME_URL: base });
    expect(code, output).toBe(0);
    expect(output).toMatch(/in the lobby with player-\d+/);
  },

  'README.md#service-client.ts': async (e) => {
    const key = randomBytes(24).toString('base64url');
    const port = await freePort();
    const dataDir = join(folderOf(e), 'data');
    const service = startService(['serve', '--backend', 'memory', '--port', String(port), '--data-dir', dataDir], key);
    const m = await waitForOutput(service, /listening on (http:\/\/\S+)/);
    const { code, output } = await runToEnd(e, { LAPSE_URL: (m[1] as string).replace(/\/$/, ''), LAPSE_KEY: key });
    expect(code, output).toBe(0);
    expect(output).toContain('connected as alice');
    expect(output).toMatch(/heartbeat acked at \d{13}/);
  },

  'docs/integrations.md#express-session.ts': async (e) => {
    const { base } = await startServer(e);
    const first = await fetch(`${base}/`);
    expect(await first.json()).toEqual({ views: 1 });
    const anon = cookie(first, 'connect.sid');
    expect(await (await fetch(`${base}/`, { headers: { cookie: anon } })).json()).toEqual({ views: 2 });
    expect((await fetch(`${base}/devices`, { headers: { cookie: anon } })).status).toBe(401);
    const alice = cookie(await fetch(`${base}/login`, { method: 'POST', headers: { cookie: anon } }), 'connect.sid');
    expect(alice).not.toBe(anon);
    const devices = (await (await fetch(`${base}/devices`, { headers: { cookie: alice } })).json()) as unknown[];
    expect(devices).toHaveLength(1);
    const out = await fetch(`${base}/logout-everywhere`, { method: 'POST', headers: { cookie: alice } });
    expect(await out.json()).toEqual({ revoked: 1 });
    expect((await fetch(`${base}/devices`, { headers: { cookie: alice } })).status).toBe(401);
  },

  'docs/integrations.md#fastify-session.ts': async (e) => {
    const { base } = await startServer(e);
    const first = await fetch(`${base}/`);
    expect(await first.json()).toEqual({ views: 1 });
    const anon = cookie(first, 'sessionId');
    expect(await (await fetch(`${base}/`, { headers: { cookie: anon } })).json()).toEqual({ views: 2 });
    expect((await fetch(`${base}/devices`, { headers: { cookie: anon } })).status).toBe(401);
    const alice = cookie(await fetch(`${base}/login`, { method: 'POST', headers: { cookie: anon } }), 'sessionId');
    const devices = (await (await fetch(`${base}/devices`, { headers: { cookie: alice } })).json()) as unknown[];
    expect(devices).toHaveLength(1);
  },

  'docs/integrations.md#hono.ts': async (e) => {
    const { base } = await startServer(e);
    expect(await (await fetch(`${base}/me`)).json()).toEqual({ anonymous: true });
    const c = cookie(await fetch(`${base}/login`, { method: 'POST' }), 'lapse_session');
    expect(await (await fetch(`${base}/me`, { headers: { cookie: c } })).json()).toMatchObject({ userId: 'alice' });
    expect((await fetch(`${base}/logout`, { method: 'POST', headers: { cookie: c } })).status).toBe(204);
    expect(await (await fetch(`${base}/me`, { headers: { cookie: c } })).json()).toEqual({ anonymous: true });
  },

  'docs/integrations.md#express.ts': async (e) => {
    await lapseMiddlewareScenario(e, (res) => expect(res.status).toBe(204));
    expect(existsSync(join(folderOf(e), 'sessions.db'))).toBe(true);
  },

  'docs/integrations.md#fastify.ts': async (e) => {
    await lapseMiddlewareScenario(e, async (res) => expect(await res.json()).toEqual({ user: 'alice' }));
  },
};

/** lapse/express and lapse/fastify: anonymous, 401 on a route that requires a session, login, the session. */
async function lapseMiddlewareScenario(e: Example, checkLogin: (res: Response) => unknown): Promise<void> {
  const { base } = await startServer(e);
  expect(await (await fetch(`${base}/me`)).json()).toEqual({ anonymous: true });
  expect((await fetch(`${base}/account`)).status).toBe(401);
  const login = await fetch(`${base}/login`, { method: 'POST' });
  await checkLogin(login);
  const c = cookie(login, 'lapse_session');
  expect(await (await fetch(`${base}/me`, { headers: { cookie: c } })).json()).toMatchObject({ userId: 'alice' });
  expect(await (await fetch(`${base}/account`, { headers: { cookie: c } })).json()).toEqual({ user: 'alice' });
}

/** The service's CLI as installed in the scratch app (`lapse`, from lapse-server after the split). */
function startService(args: string[], adminKey: string): Program {
  const p = startProgram([join(appDir, 'node_modules', '.bin', 'lapse'), ...args], appDir, { LAPSE_ADMIN_KEY: adminKey, LAPSE_LOG_LEVEL: 'warn' });
  children.push(p);
  return p;
}

describe('README and docs examples', () => {
  it('every TypeScript example is a titled program with a check here, or marked as a fragment (and fragments stay few)', () => {
    expect(programs.length).toBeGreaterThanOrEqual(9);
    for (const e of programs) expect(e.title, `${e.doc}:${e.line} has no title="…"`).toMatch(/\.ts$/);
    expect(programs.map((e) => `${e.doc}#${e.title}`).sort()).toEqual(Object.keys(drivers).sort());
    expect(examples.filter((e) => e.fragment).length).toBeLessThanOrEqual(2);
  });

  it('the examples type-check: tsc --noEmit with moduleResolution nodenext, strict, skipLibCheck false', async () => {
    expect(typecheck.output).toBe('');
    expect(typecheck.code).toBe(0);
  }, 180_000);

  it.each(programs.map((e) => [`${e.doc}#${e.title}`, e] as const))('%s has no type error', async (_name, e) => {
    const mine = typecheck.output.split('\n').filter((l) => l.startsWith(exampleFile(e)));
    expect(mine).toEqual([]);
  }, 180_000);

  it.each(programs.map((e) => [`${e.doc}#${e.title}`, e] as const))('%s runs as it is', async (name, e) => {
    await (drivers[name] as (e: Example) => Promise<void>)(e);
  }, 120_000);
});
