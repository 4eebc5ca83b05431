/**
 * Debian's python-socketio client (/usr/bin/python3, not a pyenv one) against the service,
 * with natural one-argument handlers: Lapse's events carry exactly their payload.
 */
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer } from '../src/server/index.js';
import type { LapseServer } from '../src/server/context.js';
import { tempDir } from '../../../test/helpers/tmp.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = join(import.meta.dirname, 'fixtures', 'python-client.py');
const ADMIN = `lapse_admin_${'p'.repeat(43)}`;

let app: LapseServer;
let url: string;
let tmp: { dir: string; cleanup: () => void };

beforeAll(async () => {
  tmp = tempDir('lapse-py-');
  app = await createServer({
    backend: 'memory', dataDir: tmp.dir, adminKey: ADMIN, port: 0, logLevel: 'silent',
    socketIdleTimeout: '2s', socketWarnBefore: '1s',
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
  tmp?.cleanup();
});

/** Runs the client script; resolves with its steps by name. Bounded by its own waits and a kill. */
function runClient(args: string[]): Promise<Record<string, Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`python client exited with ${code}:\n${out}\n${err}`));
      const steps: Record<string, Record<string, unknown>> = {};
      for (const line of out.trim().split('\n')) {
        const { step, ...rest } = JSON.parse(line) as { step: string };
        steps[step] = rest;
      }
      resolve(steps);
    });
  });
}

it('python-socketio: refused without a token, heartbeat, idle warning and cut, activity cancels the warning, revoke', { timeout: 90_000 }, async () => {
  const tokens: string[] = [];
  for (const u of ['py1', 'py2', 'py3']) tokens.push((await app.lapse.store.create({ userId: u })).token);
  const steps = await runClient([url, ADMIN, ...tokens]);

  expect(steps.anonymous).toEqual({
    connected: false,
    error: 'One or more namespaces failed to connect',
    connect_error: { message: 'LAPSE_UNAUTHORIZED', data: { code: 'LAPSE_UNAUTHORIZED', message: expect.stringContaining('token') } },
  });
  expect(steps.connected?.sid).toEqual(expect.any(String));
  expect(steps.heartbeat).toEqual({ event: 'heartbeat_ack', keys: ['timestamp'] });
  expect(steps.idle).toEqual({
    events: ['session_expiring', 'session_expired', 'disconnect'],
    expired: { reason: 'idle' },
    expiring_keys: ['expiresAt'],
  });
  expect(steps.cancel).toEqual({ first: 'session_expiring', second: 'session_expiring', later: true });
  expect(steps.revoke).toEqual({ status: 204, events: ['session_expired', 'disconnect'], expired: { reason: 'revoked' } });
});
