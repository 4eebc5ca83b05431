import { request as httpRequest, Agent } from 'node:http';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { createServer } from '../src/server/index.js';
import { tempDir } from '../../../test/helpers/tmp.js';

// A request still in flight when the service starts to close finishes, and its keep-alive
// connection is closed once it is idle: the close does not wait for the keep-alive timeout.

let tmp: ReturnType<typeof tempDir> | undefined;
afterEach(() => {
  tmp?.cleanup();
  tmp = undefined;
});

it('close() waits for a request in flight, answers it, and then closes its keep-alive connection at once', async () => {
  tmp = tempDir('lapse-shutdown-conn-');
  const app = await createServer({ backend: 'memory', dataDir: join(tmp.dir, 'data'), logLevel: 'silent', liveConnections: false });
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  let entered: () => void = () => {};
  const inside = new Promise<void>((r) => (entered = r));
  // A route of the test's own, standing for a write that waits on its backend.
  app.get('/held', async () => {
    entered();
    await held;
    return { ok: true };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  const agent = new Agent({ keepAlive: true });
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/held', agent, headers: { authorization: `Bearer ${app.lapse.generatedAdminKey}` } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
  await inside;
  const started = performance.now();
  const closed = app.close();
  // Answer only once the server has stopped listening: Node has then closed the connections
  // that were idle, and this one, busy until now, goes idle after.
  for (let i = 0; i < 1_000 && app.server.listening; i++) await new Promise((r) => setImmediate(r));
  expect(app.server.listening).toBe(false);
  release();
  expect(await answer).toEqual({ status: 200, body: '{"ok":true}' });
  await closed;
  // Without closing it, the close would wait for Fastify's keep-alive timeout (72 s).
  expect(performance.now() - started).toBeLessThan(2_000);
  agent.destroy();
});
