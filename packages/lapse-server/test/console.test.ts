import { chromium, type Browser, type Page } from 'playwright-core';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LapseServer } from '../src/server/index.js';
import { createServer } from '../src/server/index.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumAvailable } from '../../../test/helpers/chromium.js';
import { tempDir } from '../../../test/helpers/tmp.js';

// Functions passed to page.evaluate run in the browser; this project compiles without the DOM library.
// biome-ignore lint/suspicious/noExplicitAny: browser globals, typed loosely on purpose
declare const window: any, document: any, sessionStorage: any, localStorage: any;
type HTMLCanvasElement = { width: number; height: number; getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: number[] } } | null };

// biome-ignore lint/suspicious/noExplicitAny: JSON answers, read field by field
type Json = any;

const ADMIN = `lapse_admin_${'c'.repeat(40)}`;
const FIREFOX_ANDROID = 'Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0';
const CHROME_MAC = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
/** Bound on every wait for the page: generous for a shared machine; the 1 s promises are measured separately. */
const WAIT = 5000;

describe.skipIf(!chromiumAvailable())('the live admin console in Chromium', () => {
  let app: LapseServer;
  let base: string;
  let browser: Browser;
  const sockets: Socket[] = [];
  const tmp = tempDir('lapse-console-');

  beforeAll(async () => {
    app = await createServer({
      backend: `sqlite:${tmp.dir}/lapse.db`, dataDir: tmp.dir, adminKey: ADMIN, logLevel: 'silent', port: 0,
      console: { sampleInterval: '200ms', history: '1m' },
      onReady: (a) => {
        a.lapse.live?.io.on('connection', (socket) => socket.on('join', (room: string, ack: () => void) => void Promise.resolve(socket.join(room)).then(ack)));
      },
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    await browser?.close();
    await app?.close();
    tmp.cleanup();
  });

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  }

  async function createSession(userId: string, userAgent = CHROME_MAC): Promise<{ token: string; id: string }> {
    const r = await api('POST', '/v1/sessions', { userId, userAgent, ip: '203.0.113.7' });
    expect(r.status).toBe(201);
    return { token: r.json.token, id: r.json.session.id };
  }

  function connect(token: string): Promise<Socket> {
    const s = io(base, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
    sockets.push(s);
    return new Promise((resolve, reject) => {
      s.once('connect', () => resolve(s));
      s.once('connect_error', reject);
    });
  }

  async function signedIn(viewport = { width: 1280, height: 800 }): Promise<Page> {
    const page = await browser.newPage({ viewport });
    await page.goto(base);
    await page.fill('#key', ADMIN);
    await page.click('#login-form button');
    await page.waitForSelector('#live.live', { timeout: WAIT });
    return page;
  }

  it('refuses a wrong key, signs in with the admin key, keeps it in sessionStorage only, and loads under 200 KB of JavaScript', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const requests: string[] = [];
    const scripts: Promise<number>[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('response', (r) => {
      if (r.request().resourceType() === 'script') scripts.push(r.body().then((b) => b.length));
    });
    const res = await page.goto(base);
    const csp = res?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');

    await page.fill('#key', 'lapse_admin_wrong');
    await page.click('#login-form button');
    await expect.poll(() => page.textContent('#login-error'), { timeout: WAIT }).toContain('not accepted');
    expect(await page.isVisible('#app')).toBe(false);

    await page.fill('#key', ADMIN);
    await page.click('#login-form button');
    await page.waitForSelector('#live.live', { timeout: WAIT });
    expect(await page.evaluate(() => sessionStorage.getItem('lapse.adminKey'))).toBe(ADMIN);
    expect(await page.evaluate(() => JSON.stringify(localStorage) + document.cookie)).not.toContain(ADMIN);
    expect(requests.some((u) => u.includes(ADMIN))).toBe(false);
    // Every script the page loaded (app modules and uPlot), summed.
    const sizes = await Promise.all(scripts);
    expect(sizes.length).toBeGreaterThanOrEqual(4);
    const total = sizes.reduce((a, b) => a + b, 0);
    console.log(`console JavaScript: ${sizes.length} scripts, ${total} bytes`);
    expect(total).toBeLessThan(200 * 1024);
    await page.close();
  });

  it('shows a socket that connects elsewhere within 1 s, disconnects it from the table, and drops it when it leaves', async () => {
    const page = await signedIn();
    await page.click('nav a[data-view="connections"]');
    await page.waitForSelector('#conn-summary:has-text("shown on node")', { timeout: WAIT });

    const { token, id } = await createSession('carol');
    const s1 = await connect(token);
    // From the moment the client is connected to the row on screen.
    const started = Date.now();
    await page.waitForSelector(`#connections tr[data-sid="${s1.id}"]`, { timeout: WAIT });
    const appearedIn = Date.now() - started;
    expect(appearedIn).toBeLessThan(1000);
    const row = page.locator(`#connections tr[data-sid="${s1.id}"]`);
    expect(await row.textContent()).toContain('carol');
    expect(await row.textContent()).toContain(id.slice(0, 12));

    // Filter by room: only the socket that joined it shows.
    const other = await createSession('dave');
    const s2 = await connect(other.token);
    await new Promise<void>((resolve) => s2.emit('join', 'lobby', resolve));
    await page.fill('#conn-room', 'lobby');
    await page.click('#conn-filter button[type="submit"]');
    await expect.poll(() => page.locator('#connections tr[data-sid]').count(), { timeout: WAIT }).toBe(1);
    expect(await page.locator(`#connections tr[data-sid="${s2.id}"]`).textContent()).toContain('lobby');
    await page.click('#conn-filter button[type="reset"]');
    await expect.poll(() => page.locator('#connections tr[data-sid]').count(), { timeout: WAIT }).toBe(2);

    // Leaving: gone from the table within 1 s.
    const left = Date.now();
    s2.disconnect();
    await page.waitForSelector(`#connections tr[data-sid="${s2.id}"]`, { state: 'detached', timeout: WAIT });
    const leftIn = Date.now() - left;
    console.log(`console push: connect shown in ${appearedIn} ms, disconnect in ${leftIn} ms`);
    expect(leftIn).toBeLessThan(1000);

    // Disconnect from the console: the client is told.
    const gone = new Promise<string>((resolve) => s1.once('disconnect', resolve));
    await row.locator('button', { hasText: 'Disconnect' }).click();
    expect(await gone).toBe('io server disconnect');
    await page.waitForSelector(`#connections tr[data-sid="${s1.id}"]`, { state: 'detached', timeout: WAIT });
    await page.close();
  });

  it('shows a session created over the API, and a revoke from the console ends it and its socket', async () => {
    const page = await signedIn();
    await page.click('nav a[data-view="users"]');
    await page.fill('#user-prefix', 'erin');
    await page.click('#user-search button');
    await page.waitForSelector('#users td:has-text("No user matches")', { timeout: WAIT });

    const phone = await createSession('erin', FIREFOX_ANDROID);
    const laptop = await createSession('erin', CHROME_MAC);
    // Pushed: the user appears without a click.
    await page.waitForSelector('#users tr[data-user="erin"]', { timeout: WAIT });
    await page.click('#users tr[data-user="erin"] button');
    await expect.poll(() => page.locator('#devices tr[data-id]').count(), { timeout: WAIT }).toBe(2);
    const phoneRow = page.locator(`#devices tr[data-id="${phone.id}"]`);
    expect(await phoneRow.textContent()).toMatch(/Firefox 128.*Android 14.*mobile/);
    expect(await page.locator(`#devices tr[data-id="${laptop.id}"]`).textContent()).toMatch(/Chrome 126.*Mac OS 10\.15\.7.*Apple Macintosh/);

    const socket = await connect(phone.token);
    const expired = new Promise<unknown>((resolve) => socket.once('session_expired', resolve));
    const disconnected = new Promise<string>((resolve) => socket.once('disconnect', resolve));
    await phoneRow.locator('button', { hasText: 'Revoke' }).first().click();
    expect(await expired).toEqual({ reason: 'revoked' });
    expect(await disconnected).toBe('io server disconnect');
    await expect.poll(() => page.locator('#devices tr[data-id]').count(), { timeout: WAIT }).toBe(1);
    expect(await app.lapse.store.get(phone.id)).toBeNull();

    // Revoke all but one: keep the laptop, a third session goes.
    const third = await createSession('erin', FIREFOX_ANDROID);
    await expect.poll(() => page.locator('#devices tr[data-id]').count(), { timeout: WAIT }).toBe(2);
    await page.locator(`#devices tr[data-id="${laptop.id}"] button`, { hasText: 'Revoke all others' }).click();
    await expect.poll(() => page.locator('#devices tr[data-id]').count(), { timeout: WAIT }).toBe(1);
    expect(await app.lapse.store.get(third.id)).toBeNull();
    expect(await app.lapse.store.get(laptop.id)).not.toBeNull();
    await page.close();
  });

  it('searches by id prefix, sorts columns, and pages with cursors (Next replaces the rows, Previous comes back)', async () => {
    const { store } = app.lapse;
    for (let i = 0; i < 23; i++) await store.create({ userId: `page-${String(i).padStart(2, '0')}`, ip: `10.0.0.${i}` });
    const page = await signedIn();
    await page.click('nav a[data-view="users"]');
    await page.fill('#user-prefix', 'page-');
    await page.click('#user-search button');
    await expect.poll(() => page.locator('#users tr[data-user]').count(), { timeout: WAIT }).toBe(23);
    await page.fill('#user-prefix', 'page-1');
    await page.click('#user-search button');
    await expect.poll(() => page.locator('#users tr[data-user]').count(), { timeout: WAIT }).toBe(10);
    expect(await page.locator('#users tr[data-user]').first().getAttribute('data-user')).toBe('page-10');

    // Sessions by id prefix: the first two characters of one id.
    const some = (await store.listUser('page-05'))[0]?.id as string;
    await page.click('nav a[data-view="sessions"]');
    await page.fill('#session-prefix', some.slice(0, 3));
    await page.click('#session-search button');
    // The unfiltered list shown on arrival may hold `some` too: wait for the filtered one (every
    // row matching), not for `some` alone, which CI once saw before the search had answered.
    const shown = () => page.locator('#sessions tr[data-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id') as string));
    const filtered = (ids: string[]) => ids.length > 0 && ids.every((id) => id.startsWith(some.slice(0, 3)));
    await expect.poll(async () => filtered(await shown()), { timeout: WAIT }).toBe(true);
    const matched = await shown();
    expect(matched).toContain(some);
    expect(filtered(matched)).toBe(true);

    // Paging through everything, 10 a page.
    const all = (await store.page({ limit: 1000 })).sessions.map((s) => s.id);
    expect(all.length).toBeGreaterThan(20);
    await page.fill('#session-prefix', '');
    await page.selectOption('#session-limit', '10');
    await page.click('#session-search button');
    const ids = () => page.locator('#sessions tr[data-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id') as string));
    await expect.poll(ids, { timeout: WAIT }).toEqual(all.slice(0, 10));
    await page.click('#sessions-next');
    await expect.poll(ids, { timeout: WAIT }).toEqual(all.slice(10, 20));
    expect(await page.textContent('#sessions-page')).toBe('page 2');
    await page.click('#sessions-prev');
    await expect.poll(ids, { timeout: WAIT }).toEqual(all.slice(0, 10));
    expect(await page.isDisabled('#sessions-prev')).toBe(true);

    // Sorting by IP, then the other way (keyboard: the header is a button).
    await page.focus('#sessions-table th[data-key="ip"] button');
    await page.keyboard.press('Enter');
    expect(await page.getAttribute('#sessions-table th[data-key="ip"]', 'aria-sort')).toBe('ascending');
    const ips = () => page.locator('#sessions tr[data-id] td:nth-child(4)').allTextContents();
    const asc = await ips();
    expect(asc).toEqual([...asc].sort());
    await page.keyboard.press('Enter');
    expect(await page.getAttribute('#sessions-table th[data-key="ip"]', 'aria-sort')).toBe('descending');
    expect(await ips()).toEqual([...asc].reverse());
    await page.close();
  });

  it('draws chart points from the server series, and new points arrive by push', async () => {
    const { store } = app.lapse;
    const page = await signedIn();
    const { token } = await store.create({ userId: 'chart' });
    const from = Date.now();
    for (let i = 0; i < 5; i++) expect((await api('POST', '/v1/sessions/validate', { token })).status).toBe(200);
    const until = Date.now();
    // Wait until the page holds a point sampled after the validations (pushed: no reload).
    await expect
      .poll(() => page.evaluate((t: number) => window.lapseConsole.charts.data('sessions')[0].some((s: number) => s * 1000 > t), until), { timeout: WAIT })
      .toBe(true);
    const data = await page.evaluate(() => {
      const c = window.lapseConsole.charts;
      return { sessions: c.data('sessions'), validate: c.data('validate'), latency: c.data('latency'), drawn: c.plots.sessions?.data[0].length ?? 0 };
    });
    // The validations show in the points sampled since they began, with a latency.
    const since = data.sessions[0].map((t: number, i: number) => (t * 1000 > from ? i : -1)).filter((i: number) => i >= 0);
    expect(since.some((i: number) => data.validate[1][i] > 0)).toBe(true);
    expect(since.some((i: number) => data.latency[1][i] !== null && data.latency[1][i] > 0)).toBe(true);
    expect(data.sessions[1].at(-1)).toBe((await store.stats()).sessions);
    const server = (await api('GET', '/v1/console/series')).json;
    expect(server.intervalMs).toBe(200);
    expect(data.sessions[0].length).toBeGreaterThan(1);
    expect(data.drawn).toBe(data.sessions[0].length);
    // The page's points are the server's (the server may have one more by now).
    const serverTimes = server.points.map((p: { t: number }) => p.t / 1000);
    expect(serverTimes).toEqual(expect.arrayContaining(data.sessions[0].slice(0, -1)));
    // The canvas has pixels drawn.
    const inked = await page.evaluate(() => {
      const canvas = document.querySelector('#chart-sessions canvas') as HTMLCanvasElement;
      const px = canvas.getContext('2d')?.getImageData(0, 0, canvas.width, canvas.height).data ?? [];
      let n = 0;
      for (let i = 3; i < px.length; i += 4) if ((px[i] as number) > 0) n++;
      return n;
    });
    expect(inked).toBeGreaterThan(100);
    await page.close();
  });

  it('runs a job now and shows the new last run', async () => {
    const { store } = app.lapse;
    const page = await signedIn();
    await page.click('nav a[data-view="jobs"]');
    const row = page.locator('tr[data-job="session_cleanup"]');
    await row.waitFor({ timeout: WAIT });
    const job = () => store.scheduler.list().find((j) => j.id === 'session_cleanup');
    const before = job();
    // The job also runs by itself once a minute: the click's run is the one that ends after it.
    // "Run now" joins a run in progress, so when one is running at the click, that run (started
    // just before) is the click's; else the click's run starts after it.
    const atClick = job();
    const clickedAt = atClick?.running && atClick.lastRunAt !== null ? atClick.lastRunAt : Date.now();
    await row.locator('button', { hasText: 'Run now' }).click();
    // The row shows a run as it starts (running…, runs not yet counted), then as it ends: wait for the end.
    const shown = async () => ({
      lastRun: Number(await row.locator('td[data-last-run]').getAttribute('data-last-run')),
      runs: Number(await row.locator('td[data-runs]').textContent()),
      running: (await row.locator('td[data-last-run]').textContent()) === 'running…',
    });
    await expect.poll(async () => { const s = await shown(); return s.lastRun >= clickedAt && !s.running; }, { timeout: WAIT }).toBe(true);
    await expect.poll(async () => { const s = await shown(); const j = job(); return j !== undefined && !j.running && s.lastRun === j.lastRunAt && s.runs === j.runs; }, { timeout: WAIT }).toBe(true);
    const lastRun = (await shown()).lastRun;
    expect(lastRun).toBeGreaterThanOrEqual(clickedAt);
    expect(job()?.runs).toBeGreaterThan(before?.runs ?? 0);
    expect(await page.locator('#job-runs li').first().textContent()).toContain('session_cleanup');
    await page.close();
  });

  it('makes an app key shown once and revokes it', async () => {
    const page = await signedIn();
    await page.click('nav a[data-view="keys"]');
    await page.fill('#key-name', 'web-shop');
    await page.click('#key-create button');
    await page.waitForSelector('#new-key:not([hidden])', { timeout: WAIT });
    const key = (await page.textContent('#new-key-value')) as string;
    expect(key).toMatch(/^lapse_app_/);
    expect(app.lapse.keys.verify(key)?.name).toBe('web-shop');
    const row = page.locator('#keys tr', { hasText: 'web-shop' });
    page.once('dialog', (d) => void d.accept());
    await row.locator('button', { hasText: 'Revoke' }).click();
    await expect.poll(() => app.lapse.keys.verify(key), { timeout: WAIT }).toBeNull();
    // Shown once: gone after leaving the view.
    await page.click('nav a[data-view="overview"]');
    await page.click('nav a[data-view="keys"]');
    expect(await page.isVisible('#new-key')).toBe(false);
    await page.close();
  });

  it('is keyboard navigable: a tab link opens its view, focus lands on it, and its buttons follow', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(base);
    // The key field has focus; typing and Enter sign in.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('key');
    await page.keyboard.type(ADMIN);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#live.live', { timeout: WAIT });
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('h-overview');
    await page.keyboard.press('Shift+Tab');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-view'))).toBe('keys');
    await page.focus('nav a[data-view="jobs"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#view-jobs:not([hidden])', { timeout: WAIT });
    await expect.poll(() => page.evaluate(() => document.activeElement?.id), { timeout: WAIT }).toBe('h-jobs');
    expect(await page.getAttribute('nav a[data-view="jobs"]', 'aria-current')).toBe('page');
    await page.waitForSelector('tr[data-job="session_cleanup"] button', { timeout: WAIT });
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('aria-label'))).toMatch(/^Run .* now$/);
    await page.close();
  });

  it('is readable on a phone width', async () => {
    const page = await signedIn({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.click('nav a[data-view="connections"]');
    const wide = await page.evaluate(() =>
      [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.scroll')).map((e) => `${e.tagName}#${e.id}.${e.className}`).slice(0, 5),
    );
    expect(wide).toEqual([]);
    expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    await page.close();
  });
});
