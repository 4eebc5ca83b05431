import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LapseError } from 'lapse/internal';
import { KeyRing, loadConfig, resolveConfig, SETTINGS } from '../src/server/index.js';
import { redactUrl } from '../src/server/log.js';
import { FailureLimiter } from '../src/server/rate-limit.js';
import { tempDir } from '../../../test/helpers/tmp.js';

function invalid(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LapseError);
    expect((err as LapseError).code).toBe('LAPSE_INVALID_OPTION');
    return (err as Error).message;
  }
  throw new Error('expected LAPSE_INVALID_OPTION');
}

describe('config', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({ env: {} });
    expect(c).toMatchObject({ host: '127.0.0.1', port: 7411, dataDir: './data', backend: 'sqlite:data/lapse.db', bodyLimit: 1048576, corsOrigins: [], logLevel: 'info' });
    expect(c.rateLimit).toEqual({ max: 600, windowMs: 60_000 });
    expect(c.adminKey).toBeUndefined();
  });

  it('puts the default SQLite file in the data folder', () => {
    expect(loadConfig({ env: { LAPSE_DATA_DIR: '/srv/lapse' } }).backend).toBe('sqlite:/srv/lapse/lapse.db');
  });

  it('takes flags over the environment over the config file', () => {
    const tmp = tempDir('lapse-cfg-');
    try {
      const file = join(tmp.dir, 'lapse.json');
      writeFileSync(file, JSON.stringify({ port: 1000, host: '0.0.0.0', idleTimeout: '1h', backend: 'memory' }));
      const c = loadConfig({ env: { LAPSE_CONFIG: file, LAPSE_PORT: '2000', LAPSE_ADMIN_KEY: 'k'.repeat(32) }, flags: { port: '3000' } });
      expect(c).toMatchObject({ port: 3000, host: '0.0.0.0', idleTimeout: '1h', backend: 'memory', adminKey: 'k'.repeat(32) });
      expect(loadConfig({ env: { LAPSE_CONFIG: file, LAPSE_PORT: '2000' } }).port).toBe(2000);
    } finally {
      tmp.cleanup();
    }
  });

  it('names the source of a bad value in the message', () => {
    expect(invalid(() => loadConfig({ env: { LAPSE_PORT: 'eighty' } }))).toContain('LAPSE_PORT must be a port number');
    expect(invalid(() => loadConfig({ env: {}, flags: { port: '70000' } }))).toContain('--port');
    expect(invalid(() => loadConfig({ env: { LAPSE_BACKEND: 'mongo://x' } }))).toContain('LAPSE_BACKEND');
    expect(invalid(() => loadConfig({ env: { LAPSE_IDLE_TIMEOUT: 'forever' } }))).toContain('LAPSE_IDLE_TIMEOUT');
    expect(invalid(() => loadConfig({ env: { LAPSE_LOG_LEVEL: 'loud' } }))).toContain('one of fatal');
    expect(invalid(() => loadConfig({ env: { LAPSE_BODY_LIMIT: '5gb' } }))).toContain('LAPSE_BODY_LIMIT');
    expect(invalid(() => loadConfig({ env: { LAPSE_RATE_LIMIT: 'lots' } }))).toContain("'600/1m'");
    expect(invalid(() => loadConfig({ env: { LAPSE_ADMIN_KEY: 'short' } }))).toContain('at least 24 characters');
    expect(invalid(() => loadConfig({ env: { LAPSE_CORS_ORIGINS: 'not a url' } }))).toContain('LAPSE_CORS_ORIGINS');
    expect(invalid(() => resolveConfig({ prot: 1 } as never))).toContain("unknown setting 'prot'");
  });

  it('refuses a broken config file, unknown keys in it, and an admin key in it', () => {
    const tmp = tempDir('lapse-cfg-');
    try {
      const file = join(tmp.dir, 'c.json');
      writeFileSync(file, '{ nope');
      expect(invalid(() => loadConfig({ env: {}, file }))).toContain('not valid JSON');
      writeFileSync(file, JSON.stringify({ prot: 1 }));
      expect(invalid(() => loadConfig({ env: {}, file }))).toContain("unknown setting 'prot'");
      writeFileSync(file, JSON.stringify({ adminKey: 'k'.repeat(30) }));
      expect(invalid(() => loadConfig({ env: {}, file }))).toContain('LAPSE_ADMIN_KEY');
      expect(invalid(() => loadConfig({ env: {}, file: join(tmp.dir, 'missing.json') }))).toContain('cannot read');
    } finally {
      tmp.cleanup();
    }
  });

  it('is documented in full in docs/config.md', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'config.md'), 'utf8');
    for (const s of SETTINGS) {
      expect(doc, s.env).toContain(`| \`${s.key}\` | \`${s.env}\` |`);
      if (s.flag) expect(doc, s.flag).toContain(s.flag.replace('|', '\\|'));
    }
  });

  it('parses sizes, lists, switches and limits', () => {
    const c = loadConfig({
      env: { LAPSE_BODY_LIMIT: '512kb', LAPSE_CORS_ORIGINS: 'https://a.example, https://b.example', LAPSE_ACCESS_LOG: 'off', LAPSE_RATE_LIMIT: '10/30s', LAPSE_SWEEP_INTERVAL: 'off', LAPSE_MAX_SESSIONS: '1000' },
    });
    expect(c).toMatchObject({ bodyLimit: 524288, corsOrigins: ['https://a.example', 'https://b.example'], accessLog: false, rateLimit: { max: 10, windowMs: 30_000 }, sweepInterval: false, maxSessions: 1000 });
    expect(loadConfig({ env: { LAPSE_RATE_LIMIT: 'off' } }).rateLimit).toBe(false);
  });
});

describe('keys', () => {
  it('makes an admin key once, keeps only its hash in keys.json (0600), and verifies it', () => {
    const tmp = tempDir('lapse-keys-');
    try {
      const ring = new KeyRing(join(tmp.dir, 'data'));
      const admin = ring.ensureAdmin();
      expect(admin).toMatch(/^lapse_admin_[A-Za-z0-9_-]{43}$/);
      expect(ring.ensureAdmin()).toBeNull();
      expect(new KeyRing(join(tmp.dir, 'data')).ensureAdmin()).toBeNull();
      const file = join(tmp.dir, 'data', 'keys.json');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const text = readFileSync(file, 'utf8');
      expect(text).not.toContain(admin as string);
      expect(ring.verify(admin as string)?.kind).toBe('admin');
      expect(ring.verify(`${admin}x`)).toBeNull();
      expect(ring.verify('')).toBeNull();
    } finally {
      tmp.cleanup();
    }
  });

  it('uses LAPSE_ADMIN_KEY instead of generating one', () => {
    const tmp = tempDir('lapse-keys-');
    try {
      const adminKey = 'operator-chosen-admin-key-0123456789';
      const ring = new KeyRing(tmp.dir, { adminKey });
      expect(ring.ensureAdmin()).toBeNull();
      expect(ring.verify(adminKey)).toMatchObject({ kind: 'admin', name: 'LAPSE_ADMIN_KEY' });
      expect(ring.list()).toEqual([]);
    } finally {
      tmp.cleanup();
    }
  });

  it('creates, lists and revokes app keys; another process sees the change', () => {
    const tmp = tempDir('lapse-keys-');
    try {
      const server = new KeyRing(tmp.dir);
      const cli = new KeyRing(tmp.dir);
      const { key, record } = cli.create('web');
      expect(key).toMatch(/^lapse_app_/);
      expect(server.verify(key)).toEqual({ id: record.id, name: 'web', kind: 'app' });
      expect(() => cli.create('web')).toThrow(/exists/);
      expect(() => cli.create('bad name!')).toThrow(LapseError);
      expect(cli.list().map((k) => k.name)).toEqual(['web']);
      expect(cli.revoke('web')).toBe(true);
      expect(cli.revoke('web')).toBe(false);
      expect(cli.list()[0]?.revokedAt).toEqual(expect.any(Number));
      // The server re-reads on a miss at once, and on a hit at most a second later.
      const later = Date.now() + 1500;
      const realNow = Date.now;
      Date.now = () => later;
      try {
        expect(server.verify(key)).toBeNull();
      } finally {
        Date.now = realNow;
      }
    } finally {
      tmp.cleanup();
    }
  });
});

describe('helpers', () => {
  it('redacts token- and key-shaped parts of URLs', () => {
    const token = `${'a'.repeat(22)}.${'b'.repeat(43)}`;
    expect(redactUrl(`/v1/sessions/${token}`)).toBe('/v1/sessions/[token]');
    expect(redactUrl('/x/lapse_app_abcDEF123')).toBe('/x/[key]');
    expect(redactUrl(`/v1/sessions?limit=5&token=${token}&cursor=${token}`)).toBe('/v1/sessions?limit=5&token=[redacted]&cursor=[redacted]');
  });

  it('limits failures per address in fixed windows with bounded memory', () => {
    let now = 0;
    const limiter = new FailureLimiter({ max: 2, windowMs: 1000, maxEntries: 3 }, { now: () => now });
    expect(limiter.fail('a', null)).toBe(0);
    expect(limiter.fail('a', null)).toBe(1000);
    now = 400;
    expect(limiter.fail('a', 'other')).toBe(600);
    for (const ip of ['b', 'c', 'd', 'e']) limiter.fail(ip, null);
    expect(limiter.size).toBe(6);
    now = 1000;
    expect(limiter.fail('b', null)).toBe(0);
  });
});
