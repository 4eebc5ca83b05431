// Screenshots of every console view at 1280×800 and 390×844, for docs/console/ and the README.
// Run: npx tsx packages/lapse-server/scripts/console-screenshots.ts   (Debian's Chromium at /usr/bin/chromium)
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { io, type Socket } from 'socket.io-client';
import { createServer } from '../src/server/index.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../../../test/helpers/chromium.js';

const ADMIN = `lapse_admin_${'s'.repeat(40)}`;
// The repository's docs/console (this script lives in packages/lapse-server/scripts).
const OUT = join(import.meta.dirname, '..', '..', '..', 'docs', 'console');
const UAS = [
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 Edg/125.0.0.0',
];

const data = join(tmpdir(), `lapse-shots-${process.pid}`);
const app = await createServer({
  backend: 'memory', dataDir: data, adminKey: ADMIN, logLevel: 'silent', maxSessions: 60,
  console: { sampleInterval: '500ms', history: '1m' },
  onReady: (a) => {
    a.lapse.live?.io.on('connection', (s) => s.on('join', (room: string, ack: () => void) => void Promise.resolve(s.join(room)).then(ack)));
  },
});
const base = await app.listen({ host: '127.0.0.1', port: 0 });
const { store } = app.lapse;
app.lapse.keys.create('web-shop');
app.lapse.keys.create('mobile-api');
const sockets: Socket[] = [];
const tokens: string[] = [];
const users = ['alice', 'amir', 'ana', 'bob', 'chen', 'dara'];
for (let i = 0; i < 24; i++) {
  const { token } = await store.create({ userId: users[i % users.length], userAgent: UAS[i % UAS.length], ip: `203.0.113.${10 + i}` });
  tokens.push(token);
}
for (let i = 0; i < 8; i++) {
  const s = io(base, { auth: { token: tokens[i] }, transports: ['websocket'], reconnection: false, forceNew: true });
  await new Promise<void>((resolve, reject) => s.once('connect', () => resolve()).once('connect_error', reject));
  await new Promise<void>((resolve) => s.emit('join', i % 2 ? 'lobby' : `match:${i % 3}`, resolve));
  sockets.push(s);
}
// A few seconds of traffic, so the charts have a shape.
for (let round = 0; round < 24; round++) {
  // Over HTTP, so that the latency histogram sees them too.
  for (let i = 0; i < 20 + ((round * 7) % 30); i++) {
    await fetch(`${base}/v1/sessions/validate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ token: tokens[i % tokens.length] }),
    });
  }
  for (let i = 0; i < round % 4; i++) tokens.push((await store.create({ userId: users[round % users.length], userAgent: UAS[round % UAS.length] })).token);
  if (round % 5 === 0) await store.delete((await store.page({ limit: 1 })).sessions[0]?.id as string);
  await new Promise((r) => setTimeout(r, 250));
}
await store.scheduler.runNow('session_cleanup');

mkdirSync(OUT, { recursive: true });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
try {
  for (const [size, viewport] of [['1280x800', { width: 1280, height: 800 }], ['390x844', { width: 390, height: 844 }]] as const) {
    const page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
    await page.goto(base);
    await page.waitForSelector('#key');
    await page.screenshot({ path: join(OUT, `signin-${size}.png`) });
    await page.fill('#key', ADMIN);
    await page.click('#login-form button');
    await page.waitForSelector('#live.live');
    for (const view of ['overview', 'connections', 'users', 'sessions', 'jobs', 'keys']) {
      await page.click(`nav a[data-view="${view}"]`);
      if (view === 'overview') await page.waitForFunction(() => document.querySelectorAll('.chart canvas').length === 6);
      if (view === 'connections') await page.waitForSelector('#connections tr[data-sid]');
      if (view === 'users') {
        await page.fill('#user-prefix', 'a');
        await page.click('#user-search button');
        await page.click('#users tr[data-user="alice"] button');
        await page.waitForSelector('#devices tr[data-id]');
      }
      if (view === 'sessions') await page.waitForSelector('#sessions tr[data-id]');
      if (view === 'jobs') await page.waitForSelector('#jobs tr[data-job]');
      if (view === 'keys') await page.waitForSelector('#keys tr');
      await page.evaluate(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
      await page.screenshot({ path: join(OUT, `${view}-${size}.png`) });
    }
    await page.close();
  }
  const dark = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
  await dark.goto(base);
  await dark.fill('#key', ADMIN);
  await dark.click('#login-form button');
  await dark.waitForFunction(() => document.querySelectorAll('.chart canvas').length === 6);
  await dark.screenshot({ path: join(OUT, 'overview-dark-1280x800.png') });
} finally {
  await browser.close();
  for (const s of sockets) s.disconnect();
  await app.close();
  rmSync(data, { recursive: true, force: true });
}
console.log(`screenshots in ${OUT}`);
