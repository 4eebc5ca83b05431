import { mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LapseServer } from '../src/server/index.js';
import { createServer } from '../src/server/index.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumAvailable } from '../../../test/helpers/chromium.js';
import { tempDir } from '../../../test/helpers/tmp.js';

const ADMIN = `lapse_admin_${'t'.repeat(40)}`;

describe.skipIf(!chromiumAvailable())('admin web page in Chromium', () => {
  let app: LapseServer;
  let base: string;
  let browser: Browser;
  const tmp = tempDir('lapse-admin-');

  beforeAll(async () => {
    app = await createServer({ backend: 'memory', dataDir: tmp.dir, adminKey: ADMIN, logLevel: 'silent', port: 0 });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    const { store } = app.lapse;
    for (let i = 0; i < 5; i++) await store.create({ userId: i < 3 ? 'alice' : 'bob', data: { i } });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    tmp.cleanup();
  });

  it('refuses a wrong key, then signs in and shows sessions, stats and jobs', async () => {
    const page = await browser.newPage();
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(base);
    await page.fill('#key', 'lapse_admin_wrong');
    await page.click('#login-form button');
    await expect.poll(() => page.textContent('#login-error')).toContain('not accepted');
    expect(await page.isVisible('#app')).toBe(false);

    await page.fill('#key', ADMIN);
    await page.click('#login-form button');
    await page.waitForSelector('#sessions tr');
    expect(await page.locator('#sessions tr').count()).toBe(5);
    expect(await page.textContent('[data-stat="sessions"]')).toBe('5');
    expect(await page.textContent('[data-stat="users"]')).toBe('2');
    expect(await page.textContent('#health')).toContain('ok');
    expect(await page.textContent('#jobs')).toContain('session_cleanup');
    // The key never travels in a URL.
    expect(requests.some((u) => u.includes(ADMIN))).toBe(false);
    mkdirSync('.tmp', { recursive: true });
    await page.screenshot({ path: '.tmp/admin-page.png', fullPage: true });
    await page.close();
  });

  it('revokes a session, revokes a user, and runs a job', async () => {
    const { store } = app.lapse;
    const page = await browser.newPage();
    await page.goto(base);
    await page.fill('#key', ADMIN);
    await page.click('#login-form button');
    await page.waitForSelector('#sessions tr');

    const first = page.locator('#sessions tr').first();
    const id = await first.getAttribute('data-id');
    await first.locator('button', { hasText: 'Revoke' }).click();
    await expect.poll(() => page.locator('#sessions tr').count()).toBe(4);
    expect(await store.get(id as string)).toBeNull();
    await expect.poll(() => page.textContent('[data-stat="revoked"]')).toBe('1');

    await page.fill('#user-id', 'bob');
    await page.click('#user-form button[type="submit"]');
    await expect.poll(() => page.textContent('#user-result')).toMatch(/live session/);
    await page.click('#user-revoke');
    await expect.poll(() => page.textContent('#user-result')).toMatch(/revoked [12] session/);
    expect(await store.listUser('bob')).toEqual([]);

    const runs = store.scheduler.list().find((j) => j.id === 'session_cleanup')?.runs ?? 0;
    await page.locator('tr[data-job="session_cleanup"] button').click();
    await expect.poll(() => store.scheduler.list().find((j) => j.id === 'session_cleanup')?.runs).toBe(runs + 1);
    await expect.poll(() => page.textContent('tr[data-job="session_cleanup"] td[data-runs]')).toBe(String(runs + 1));
    await page.close();
  });
});
