/**
 * 10,000 websocket clients on one Socket.IO server, bare and with the Lapse tracker: memory
 * per connection (heap and RSS deltas after GC), idle CPU over 10 s, and the time to detect
 * 10,000 frozen clients (the client process is SIGSTOPped; Socket.IO's ping timeout finds
 * them, the tracker must follow). Each server runs in a fresh child process; the clients
 * run in another child process (socket.io-client, transports ['websocket']).
 * Run: node --expose-gc --import tsx bench/socketio.ts [clients]
 */
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Server } from 'socket.io';
import { io as connectClient, type Socket as ClientSocket } from 'socket.io-client';
import { silentLogger } from '../packages/lapse/dist/util/logger.js';
import { trackConnections } from '../packages/lapse/dist/socket.io/index.js';
import { heapUsed, progress, writeResults } from './lib.js';

const SELF = fileURLToPath(import.meta.url);
const WANTED = Number(process.argv[2]) || 10_000;
// Short pings so that frozen clients are found in seconds; the same for both modes.
const PING_INTERVAL = 5000;
const PING_TIMEOUT = 5000;
const IDLE_MS = 10_000;
const CONNECT_CONCURRENCY = 250;
const ROOMS = 100;
const USERS = 2500;

type Mode = 'bare' | 'tracker';
type Msg = { cmd: string; [k: string]: unknown };

// ---------------------------------------------------------------- server role

async function serverRole(mode: Mode): Promise<void> {
  const http = createServer();
  const io = new Server(http, { transports: ['websocket'], pingInterval: PING_INTERVAL, pingTimeout: PING_TIMEOUT, serveClient: false });
  // The same app in both modes: identity from a middleware, one room per socket.
  io.use((socket, next) => {
    socket.data.userId = String(socket.handshake.auth.userId);
    next();
  });
  io.on('connection', (socket) => {
    void socket.join(`room-${Number(socket.handshake.auth.n) % ROOMS}`);
  });
  const tracker = mode === 'tracker' ? trackConnections(io, { logger: silentLogger }) : null;
  const count = (): number => (tracker ? tracker.stats().totalSessions : io.of('/').sockets.size);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  // The baseline: a listening server with no clients, after GC.
  const heap0 = heapUsed();
  const rss0 = process.memoryUsage().rss;
  const send = (m: Msg) => process.send?.(m);
  send({ cmd: 'ready', port: (http.address() as AddressInfo).port, heap0, rss0 });

  process.on('message', async (m: Msg) => {
    if (m.cmd === 'measure') {
      const n = m.n as number;
      while (count() < n) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 500));
      const heap = heapUsed();
      send({ cmd: 'measured', count: count(), heap, rss: process.memoryUsage().rss });
    } else if (m.cmd === 'idle') {
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, IDLE_MS));
      const cpu = process.cpuUsage(cpu0);
      const wall = performance.now() - t0;
      send({ cmd: 'idled', cpuPercent: ((cpu.user + cpu.system) / 1000 / wall) * 100 });
    } else if (m.cmd === 'watch') {
      // Started right before the clients are frozen: time until no connection is left.
      const t0 = performance.now();
      while (count() > 0) await new Promise((r) => setTimeout(r, 20));
      send({ cmd: 'cleared', ms: performance.now() - t0, sizes: tracker?.sizes() ?? null, engineClients: io.engine.clientsCount });
    } else if (m.cmd === 'exit') {
      await tracker?.close();
      io.close();
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------- clients role

async function clientsRole(port: number, n: number): Promise<void> {
  const sockets: ClientSocket[] = [];
  let next = 0;
  let failed = 0;
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      const s = connectClient(`http://127.0.0.1:${port}`, {
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
        auth: { userId: `u${i % USERS}`, n: i },
      });
      sockets.push(s);
      s.once('connect', () => resolve());
      s.once('connect_error', () => {
        failed++;
        resolve();
      });
    });
  const worker = async () => {
    while (next < n) await one(next++);
  };
  await Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, worker));
  process.send?.({ cmd: 'connected', failed });
}

// ---------------------------------------------------------------- orchestrator

function child(args: string[]): ChildProcess {
  return fork(SELF, args, { execArgv: ['--expose-gc', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function reply(c: ChildProcess, cmd: string, timeoutMs = 120_000): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${cmd}' from child within ${timeoutMs} ms`)), timeoutMs);
    const on = (m: Msg) => {
      if (m.cmd !== cmd) return;
      clearTimeout(timer);
      c.off('message', on);
      resolve(m);
    };
    c.on('message', on);
  });
}

interface ModeResult {
  mode: Mode;
  connections: number;
  heapPerConn: number;
  rssPerConn: number;
  idleCpuPercent: number;
  detectMs: number;
  connectMs: number;
  leftover: unknown;
}

async function runMode(mode: Mode, n: number): Promise<ModeResult> {
  progress(`${mode}: starting server`);
  const server = child(['server', mode]);
  const ready = await reply(server, 'ready');
  progress(`${mode}: connecting ${n} clients`);
  const clients = child(['clients', String(ready.port), String(n)]);
  try {
    const t0 = performance.now();
    const connected = await reply(clients, 'connected');
    const connectMs = performance.now() - t0;
    if ((connected.failed as number) > 0) throw new Error(`${connected.failed} clients could not connect`);
    progress(`${mode}: ${n} connected in ${(connectMs / 1000).toFixed(1)} s; measuring memory`);
    server.send({ cmd: 'measure', n });
    const mem = await reply(server, 'measured');
    progress(`${mode}: idle CPU over ${IDLE_MS / 1000} s`);
    server.send({ cmd: 'idle' });
    const idle = await reply(server, 'idled', IDLE_MS + 30_000);
    progress(`${mode}: freezing the clients`);
    server.send({ cmd: 'watch' });
    clients.kill('SIGSTOP');
    const cleared = await reply(server, 'cleared', 120_000);
    return {
      mode,
      connections: mem.count as number,
      heapPerConn: ((mem.heap as number) - (ready.heap0 as number)) / n,
      rssPerConn: ((mem.rss as number) - (ready.rss0 as number)) / n,
      idleCpuPercent: idle.cpuPercent as number,
      detectMs: cleared.ms as number,
      connectMs,
      leftover: cleared.sizes ?? { engineClients: cleared.engineClients },
    };
  } finally {
    clients.kill('SIGCONT');
    clients.kill('SIGKILL');
    server.send({ cmd: 'exit' });
    await new Promise((r) => server.once('exit', r));
  }
}

async function main(): Promise<void> {
  const limit = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim()) || 1024;
  // Each process holds one descriptor per connection plus some of its own.
  const n = Math.min(WANTED, limit - 500);
  const notes: string[] = [];
  if (n < WANTED) notes.push(`ulimit -n is ${limit}: ran ${n} clients instead of ${WANTED}.`);
  const started = performance.now();
  const bare = await runMode('bare', n);
  const tracked = await runMode('tracker', n);
  const kb = (b: number) => `${(b / 1024).toFixed(2)} KiB`;
  const rows = [bare, tracked].map((r) => ({
    mode: r.mode === 'bare' ? 'bare Socket.IO' : 'Socket.IO + lapse tracker',
    connections: r.connections,
    'heap / conn': kb(r.heapPerConn),
    'rss / conn': kb(r.rssPerConn),
    'idle CPU %': r.idleCpuPercent.toFixed(2),
    'detect frozen (s)': (r.detectMs / 1000).toFixed(2),
    'connect all (s)': (r.connectMs / 1000).toFixed(1),
  }));
  const heapRatio = tracked.heapPerConn / bare.heapPerConn;
  const rssRatio = tracked.rssPerConn / bare.rssPerConn;
  const memRatio = Math.max(heapRatio, rssRatio);
  const cpuDelta = tracked.idleCpuPercent - bare.idleCpuPercent;
  rows.push({
    mode: 'tracker / bare',
    connections: n,
    'heap / conn': `${heapRatio.toFixed(3)}x (target <= 1.15x)`,
    'rss / conn': `${rssRatio.toFixed(3)}x (target <= 1.15x)`,
    'idle CPU %': `${cpuDelta >= 0 ? '+' : ''}${cpuDelta.toFixed(2)} pp (target within 5 pp)`,
    'detect frozen (s)': `${((tracked.detectMs - bare.detectMs) / 1000).toFixed(2)} s`,
    'connect all (s)': `${(tracked.connectMs / bare.connectMs).toFixed(2)}x`,
  });
  notes.push(
    `Server pingInterval ${PING_INTERVAL} ms, pingTimeout ${PING_TIMEOUT} ms in both modes: a frozen client is due within ${(PING_INTERVAL + PING_TIMEOUT) / 1000} s; detection = SIGSTOP of the client process to zero connections (bare: namespace sockets; tracker: tracker.stats().totalSessions).`,
    `Memory: heapUsed after two forced GCs and RSS, minus the same figures of the listening server before any client, divided by the connections. Clients join one of ${ROOMS} rooms and carry one of ${USERS} user ids (socket.data.userId), in both modes.`,
    `RSS per connection moves by about ±10 % from run to run on a shared machine (allocator and V8 page growth); the heap figure is the stable one.`,
    `Connect all: wall time for the client process (${CONNECT_CONCURRENCY} handshakes in flight, its own startup included) to connect every client; on a shared 2-core machine it mostly measures the load of the moment.`,
    `Idle CPU: process.cpuUsage() of the server over ${IDLE_MS / 1000} s with every client connected and silent (pings only), as a percentage of one core.`,
    `After detection the tracker held: ${JSON.stringify(tracked.leftover)}.`,
    `Targets: memory ${memRatio <= 1.15 ? 'met' : 'NOT met'} (heap ${heapRatio.toFixed(3)}x, rss ${rssRatio.toFixed(3)}x), idle CPU ${Math.abs(cpuDelta) <= 5 ? 'met' : 'NOT met'} (${cpuDelta.toFixed(2)} pp). Whole run ${((performance.now() - started) / 1000).toFixed(0)} s.`,
  );
  writeResults('socketio', `Socket.IO tracker: ${n} websocket clients, bare vs tracked`, rows, notes);
}

const role = process.argv[2];
if (role === 'server') await serverRole(process.argv[3] as Mode);
else if (role === 'clients') await clientsRole(Number(process.argv[3]), Number(process.argv[4]));
else await main();
