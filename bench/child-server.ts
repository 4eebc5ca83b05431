/**
 * A benchmark's server runs in a child process of the same script (`--serve=<name>`), so that
 * its CPU is measured apart from the load generator's. The child prints one JSON line when it
 * listens (its port, or what the driver needs) and exits on SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Express } from 'express';

/** Starts `script --serve=<name> …args` and resolves with the JSON of the first line it prints. */
export async function startChild<T>(scriptUrl: string, name: string, args: string[] = []): Promise<{ child: ChildProcess; ready: T }> {
  // BENCH_CHILD_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof": node flags for the server children (profiling).
  const flags = process.env.BENCH_CHILD_FLAGS?.split(' ').filter((f) => f !== '') ?? [];
  const child = spawn(process.execPath, [...flags, '--import', 'tsx', fileURLToPath(scriptUrl), `--serve=${name}`, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const ready = await new Promise<T>((resolve, reject) => {
    lines.once('line', (l) => resolve(JSON.parse(l) as T));
    child.once('exit', (code) => reject(new Error(`${name} server exited with ${code}`)));
  });
  return { child, ready };
}

/** In the child (`--serve=` given): serve and print what serve() answered; otherwise run the driver. */
export async function serveOrDrive(serve: (name: string, redisUrl: string) => Promise<unknown>, main: () => Promise<void>): Promise<void> {
  const serveArg = process.argv.find((a) => a.startsWith('--serve='));
  if (!serveArg) return main();
  const redisUrl = (process.argv.find((a) => a.startsWith('--redis=')) ?? '').slice('--redis='.length);
  const ready = await serve(serveArg.slice('--serve='.length), redisUrl);
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  process.on('SIGTERM', () => process.exit(0));
}

/** In the child: the value of `--<key>=…` the driver passed (empty when absent). */
export function childArg(key: string): string {
  return (process.argv.find((a) => a.startsWith(`--${key}=`)) ?? '').slice(key.length + 3);
}

/** `GET /__cpu`: the server process's CPU time so far (µs), for CPU per request. */
export function cpuRoute(app: Express): void {
  app.get('/__cpu', (_req, res) => {
    const u = process.cpuUsage();
    res.json({ us: u.user + u.system });
  });
}

/** The server's CPU time so far (µs), from cpuRoute. */
export async function cpu(base: string): Promise<number> {
  return ((await (await fetch(`${base}/__cpu`)).json()) as { us: number }).us;
}

/** Listens on a free loopback port; resolves with the port. */
export async function listenLocal(app: Express): Promise<number> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return (server.address() as { port: number }).port;
}

/** `POST /login`, and the session cookie it set (`name=value`). */
export async function login(base: string): Promise<string> {
  const res = await fetch(`${base}/login`, { method: 'POST' });
  await res.text();
  return (res.headers.getSetCookie()[0] ?? '').split(';')[0] as string;
}

/** Stops the children (SIGTERM) and waits until each has exited. */
export async function stopChildren(children: Iterable<{ child: ChildProcess }>): Promise<void> {
  for (const { child } of children) {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
  }
}

/**
 * Runs `body` once per generation with every named server started afresh for it, and stopped
 * after it whatever happens: a process keeps its placement on the host for life, and two
 * processes of one build were seen a quarter apart, which slices taken in turns by the same
 * processes never average out.
 */
export async function inGenerations<K, S extends { child: ChildProcess }>(
  generations: number,
  names: Iterable<K>,
  start: (name: K) => Promise<S>,
  body: (servers: Map<K, S>, generation: number) => Promise<void>,
): Promise<void> {
  for (let gen = 0; gen < generations; gen++) {
    const servers = new Map<K, S>();
    try {
      for (const name of names) servers.set(name, await start(name));
      await body(servers, gen);
    } finally {
      await stopChildren(servers.values());
    }
  }
}
