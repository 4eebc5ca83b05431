import { existsSync } from 'node:fs';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Whether Debian's Chromium is here. Outside CI a missing browser skips the page tests
 * with one line saying how to install it; under CI=true the summary reporter turns that
 * skip into a failure.
 */
export function chromiumAvailable(): boolean {
  const ok = existsSync(CHROMIUM);
  if (!ok) console.warn(`chromium not found at ${CHROMIUM}: admin page tests skipped (apt-get install -y chromium)`);
  return ok;
}

/** Launch flags for a sandboxless root container with no network beyond loopback. */
export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];
