import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { LapseError } from '../src/core/errors.js';
import { lapsePlugin } from '../src/integrations/fastify.js';
import { silentLogger } from '../src/util/logger.js';
import { createStore, type StoreEvent } from '../src/core/store.js';
import { cleanupsAfterEach } from '../../../test/helpers/cleanups.js';

const cleanups = cleanupsAfterEach();

function store() {
  const s = createStore({ sweepInterval: false, logger: silentLogger });
  cleanups.push(() => s.close());
  return s;
}

async function app(options: Record<string, unknown> = {}) {
  const s = store();
  const a = Fastify();
  cleanups.push(() => a.close());
  await a.register(lapsePlugin, { store: s, closeStore: false, ...options });
  a.post('/login', async (req) => ({ token: await req.lapse.login({ userId: 'alice' }) }));
  a.post('/update', async (req) => req.lapse.update({ plan: 'pro' }));
  a.post('/rotate', async (req) => ({ token: await req.lapse.rotate() }));
  a.post('/direct', async (req) => {
    try {
      await req.lapse.update({});
      return { thrown: 'nothing' };
    } catch (err) {
      return { lapse: err instanceof LapseError };
    }
  });
  await a.ready();
  return { a, s };
}

describe('HTTP integrations', () => {
  it("login ends the request's previous session and issues a new token (the fixation defence)", async () => {
    const { a, s } = await app();
    const revoked: StoreEvent[] = [];
    s.on('revoked', (e) => revoked.push(e));
    const first = (await a.inject({ method: 'POST', url: '/login' })).json<{ token: string }>().token;
    const headers = { authorization: `Bearer ${first}` };
    const second = (await a.inject({ method: 'POST', url: '/login', headers })).json<{ token: string }>().token;
    expect(second).not.toBe(first);
    expect(await s.validate(first)).toBeNull();
    expect(revoked.map((e) => e.id)).toEqual([first.split('.')[0]]);
  });

  it('rotateOnLogin: false (which would keep a fixated session) is refused as an invalid option', async () => {
    await expect(app({ rotateOnLogin: false })).rejects.toMatchObject({ code: 'LAPSE_INVALID_OPTION' });
    await expect(app({ rotateOnLogin: true })).resolves.toBeDefined();
  });

  it('update() and rotate() without a session are LapseError LAPSE_UNAUTHORIZED (401), not a plain Error', async () => {
    const { a } = await app();
    for (const url of ['/update', '/rotate']) {
      const res = await a.inject({ method: 'POST', url });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: 'LAPSE_UNAUTHORIZED' });
    }
    expect((await a.inject({ method: 'POST', url: '/direct' })).json()).toEqual({ lapse: true });
  });
});

describe('lease events', () => {
  it("'locked' and 'unlocked' carry the session's userId", async () => {
    const s = store();
    const events: StoreEvent[] = [];
    s.on('locked', (e) => events.push(e)).on('unlocked', (e) => events.push(e));
    const { session } = await s.create({ userId: 'bob' });
    const anon = (await s.create({})).session;
    await s.withLock(session.id, () => {});
    const lease = await s.lock(anon.id);
    await s.unlock(anon.id, lease.fence);
    expect(events.map((e) => [e.reason, e.id, e.userId])).toEqual([
      ['locked', session.id, 'bob'],
      ['released', session.id, 'bob'],
      ['locked', anon.id, null],
      ['released', anon.id, null],
    ]);
  });
});
