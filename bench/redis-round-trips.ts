/**
 * Redis commands per request of LapseStore (lapse-redis) and connect-redis, per route of
 * bench/express-session.ts, from redis-server's own INFO commandstats (reset before each route).
 * Not a timing: a count, to see which store makes more round trips.
 * Run: npx tsx bench/redis-round-trips.ts
 */
import { Redis } from 'ioredis';
import { startRedis } from '../test/helpers/redis-server.js';
import { listenLocal, login } from './child-server.js';
import { peerStore } from './peer-stores.js';

const N = 200;

async function app(name: 'lapse-redis' | 'connect-redis', url: string): Promise<string> {
  const { default: express } = await import('express');
  const { default: session } = await import('express-session');
  let store: import('express-session').Store;
  if (name === 'lapse-redis') {
    const { createStore } = await import('../packages/lapse/dist/index.js');
    const { LapseStore } = await import('../packages/lapse/dist/integrations/express-session.js');
    const { redis } = await import('../packages/lapse/dist/redis.js');
    store = new LapseStore({ store: createStore({ backend: redis({ url, prefix: 'rt-lapse:' }) }), userId: (s) => (s.passport as { user?: string } | undefined)?.user });
  } else {
    store = await peerStore('connect-redis', session, url, '', 'rt-peer:');
  }
  const a = express();
  a.use(session({ store, secret: 'round-trips-secret', resave: false, saveUninitialized: false, cookie: { maxAge: 86_400_000 } }));
  let n = 0;
  a.get('/read', (_req, res) => res.json({ ok: true }));
  a.post('/write', (req, res) => {
    (req.session as unknown as Record<string, unknown>).counter = ++n;
    res.json({ ok: true });
  });
  a.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      (req.session as unknown as Record<string, unknown>).passport = { user: `u${++n % 1000}` };
      res.json({ ok: true });
    });
  });
  return `http://127.0.0.1:${await listenLocal(a)}`;
}

function commands(info: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
    if (m[1] !== 'config' && m[1] !== 'info') out[m[1] as string] = Number(m[2]) / N;
  }
  return out;
}

const server = await startRedis();
const admin = new Redis(server.url);
try {
  for (const name of ['lapse-redis', 'connect-redis'] as const) {
    const base = await app(name, server.url);
    const cookie = await login(base);
    for (const route of ['read', 'write', 'login'] as const) {
      await admin.config('RESETSTAT');
      for (let i = 0; i < N; i++) {
        const res = await fetch(`${base}/${route}`, { method: route === 'read' ? 'GET' : 'POST', headers: route === 'login' ? {} : { cookie } });
        await res.text();
      }
      console.log(name, route, JSON.stringify(commands((await admin.info('commandstats')) as string)));
    }
  }
} finally {
  admin.disconnect();
  await server.stop();
  process.exit(0);
}
