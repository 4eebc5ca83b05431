import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { LapseError } from '../src/core/errors.js';
import { lapse } from '../src/integrations/express.js';
import { lapsePlugin } from '../src/integrations/fastify.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore } from '../src/core/store.js';
import { cleanupsAfterEach } from '../../../test/helpers/cleanups.js';

const cleanups = cleanupsAfterEach();

function store() {
  const s = createStore({ sweepInterval: false, logger: silentLogger });
  cleanups.push(() => s.close());
  return s;
}

describe('req.lapse.require()', () => {
  it('Express: a route that needs a session answers 401 when logged out, and the session when logged in', async () => {
    const s = store();
    const app = express();
    app.use(lapse({ store: s }));
    app.post('/login', async (req, res) => {
      await req.lapse.login({ userId: 'alice' });
      res.sendStatus(204);
    });
    app.get('/devices', async (req, res) => {
      res.json(await s.listUser(req.lapse.require().userId as string));
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const anon = await fetch(`${base}/devices`);
    expect(anon.status).toBe(401);
    const bad = await fetch(`${base}/devices`, { headers: { cookie: 'lapse_session=not.a-token' } });
    expect(bad.status).toBe(401);

    const login = await fetch(`${base}/login`, { method: 'POST' });
    const cookie = (login.headers.getSetCookie()[0] ?? '').split(';')[0] as string;
    const devices = await fetch(`${base}/devices`, { headers: { cookie } });
    expect(devices.status).toBe(200);
    expect(((await devices.json()) as { userId: string }[]).map((d) => d.userId)).toEqual(['alice']);
  });

  it('Fastify: the thrown LapseError is LAPSE_UNAUTHORIZED with status 401', async () => {
    const s = store();
    const app = Fastify();
    cleanups.push(() => app.close());
    await app.register(lapsePlugin, { store: s, closeStore: false });
    app.get('/me', async (req) => req.lapse.require());
    app.get('/direct', async (req) => {
      try {
        req.lapse.require();
        return { thrown: 'nothing' };
      } catch (err) {
        return { lapse: err instanceof LapseError, code: (err as LapseError).code };
      }
    });
    await app.ready();
    const res = await app.inject({ method: 'GET', url: '/me' });
    expect(res.statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/direct' })).json()).toEqual({ lapse: true, code: 'LAPSE_UNAUTHORIZED' });
    const { token } = await s.create({ userId: 'bob' });
    const me = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } });
    expect(me.json()).toMatchObject({ userId: 'bob' });
  });
});
