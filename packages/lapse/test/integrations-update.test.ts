import type { AddressInfo } from 'node:net';
import express from 'express';
import { expect, it } from 'vitest';
import { lapse } from '../src/integrations/express.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore } from '../src/core/store.js';

it('req.lapse.update(fn) runs on the validated session first and loses no concurrent update', async () => {
  const store = createStore({ sweepInterval: false, logger: silentLogger });
  const app = express();
  app.use(lapse({ store, cookie: { secure: false } }));
  app.post('/login', (req, res, next) => void req.lapse.login({ data: { n: 0, tags: ['a'] } }).then(() => res.sendStatus(204), next));
  app.post('/inc', (req, res, next) => {
    req.lapse
      .update<{ n: number; tags: string[] }>((prev) => {
        prev.tags.push('x'); // fn may change what it is given: it gets a copy, not the frozen session
        return { n: prev.n + 1, tags: prev.tags.slice(0, 1) };
      })
      .then((s) => res.json(s.data), next);
  });
  app.post('/set', (req, res, next) => void req.lapse.update({ n: -1, tags: [] }).then((s) => res.json(s.data), next));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const login = await fetch(`${base}/login`, { method: 'POST' });
    const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0] as string;
    const replies = await Promise.all(Array.from({ length: 20 }, () => fetch(`${base}/inc`, { method: 'POST', headers: { cookie } })));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    const id = cookie.split('=')[1]?.split('.')[0] as string;
    const s = await store.get(id);
    expect(s?.data).toEqual({ n: 20, tags: ['a'] });
    // Requests queued behind the one in flight are written together: at most one version each.
    expect(s?.version).toBeGreaterThan(1);
    expect(s?.version).toBeLessThanOrEqual(21);
    expect(await (await fetch(`${base}/set`, { method: 'POST', headers: { cookie } })).json()).toEqual({ n: -1, tags: [] });
  } finally {
    server.close();
    await store.close();
  }
});
