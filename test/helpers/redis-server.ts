/**
 * A real redis-server for tests: spawned on a free loopback port (never 6379), with no
 * persistence, stopped and restarted on demand. Tests share one server per file and
 * isolate themselves with a random key prefix, so nothing ever flushes a server.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { describe, it } from 'vitest';
import { freePortIn, SERVER_PORTS } from './ports.js';

export interface RedisServer {
  url: string;
  port: number;
  /** Kills the server (SIGKILL: a crash, not a shutdown) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port and waits until it answers PING. */
  restart(): Promise<void>;
}

const BINARY = process.env.REDIS_SERVER ?? 'redis-server';
const INSTALL = 'apt-get install -y redis-server';
const START_TIMEOUT_MS = 10_000;
/** How much of a server's output a start failure quotes. */
const OUTPUT_TAIL = 2000;

let available: boolean | undefined;

/** Whether a redis-server binary can be run here. */
export function redisAvailable(): boolean {
  available ??= spawnSync(BINARY, ['--version'], { stdio: 'ignore' }).status === 0;
  return available;
}

/** A key prefix no other test uses, so tests can share one server without flushing it. */
export function randomPrefix(): string {
  return `t${randomBytes(6).toString('hex')}:`;
}

/**
 * `describe` for suites that need redis-server. Without the binary the suite fails under
 * CI=true (CI must install it) and is skipped elsewhere with one line saying how to install.
 */
export function describeRedis(name: string, fn: () => void): void {
  if (redisAvailable()) {
    describe(name, fn);
  } else if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs redis-server', () => {
        throw new Error(`redis-server not found on PATH; CI must install it: ${INSTALL}`);
      });
    });
  } else {
    console.warn(`skipping "${name}": redis-server not found (${INSTALL})`);
    describe.skip(name, fn);
  }
}

/** A free TCP port on 127.0.0.1 in this worker's slice of the test servers' range (see ports.ts). */
export function freePort(): Promise<number> {
  return freePortIn(SERVER_PORTS);
}

/** Starts a throwaway redis-server on a free loopback port. */
export async function startRedis(): Promise<RedisServer> {
  // Another process may grab the port between the probe and the spawn: retry a few times.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await launch(port);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

async function launch(port: number): Promise<RedisServer> {
  let child = await spawnServer(port);
  const stop = async (): Promise<void> => {
    const c = child;
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGKILL');
    await exited;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    async restart() {
      await stop();
      child = await spawnServer(port);
    },
  };
}

/** Spawns redis-server on `port` (loopback, no persistence, plus `extra` flags) and waits until it answers PING. */
export async function spawnServer(port: number, extra: string[] = []): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra];
  const child = spawn(BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // redis-server logs to stdout (a port in use, say) and config errors to stderr: keep the tail of both.
  let output = '';
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-OUTPUT_TAIL);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  // The server must not outlive the test process.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.removeListener('exit', kill));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if (await answersPing(port)) return child;
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  const how = child.exitCode === null ? `no PONG within ${START_TIMEOUT_MS} ms` : `exit ${child.exitCode}`;
  throw new Error(`redis-server on port ${port} did not start (${how}): ${output.trim()}`);
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}
