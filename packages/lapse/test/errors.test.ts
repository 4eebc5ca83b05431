import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backendError, ERROR_CODES, errors, isLapseError, LapseError } from '../src/core/errors.js';

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
const rows = [...doc.matchAll(/^\| `(LAPSE_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => ({ code: m[1], status: Number(m[2]) }));

// A code where it is thrown or told apart (not the LAPSE_* environment variables of the service).
const CODE_USE = /(?:LapseError\(|body\(\d+, |isLapseError\([^)]*?,\s*|code\s*[!=]==\s*|code:\s*)'(LAPSE_[A-Z_]+)'/g;

describe('error catalogue', () => {
  it('docs/errors.md lists exactly the codes of the catalogue (core/errors.ts), with the same statuses', () => {
    expect(rows.map((r) => r.code).sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const r of rows) expect(ERROR_CODES[r.code as keyof typeof ERROR_CODES].status).toBe(r.status);
  });

  it('every code the two packages use is in the catalogue, and every catalogue code is used', () => {
    const used = new Set<string>();
    for (const pkg of ['lapse', 'lapse-server']) {
      const src = fileURLToPath(new URL(`../../${pkg}/src`, import.meta.url));
      for (const e of readdirSync(src, { recursive: true, withFileTypes: true })) {
        if (!e.isFile() || !e.name.endsWith('.ts') || (pkg === 'lapse' && e.name === 'errors.ts' && e.parentPath.endsWith('core'))) continue;
        for (const m of readFileSync(join(e.parentPath, e.name), 'utf8').matchAll(CODE_USE)) used.add(m[1] as string);
      }
    }
    expect([...used].filter((c) => !(c in ERROR_CODES))).toEqual([]);
    expect(Object.keys(ERROR_CODES).filter((c) => !used.has(c))).toEqual([]);
  });

  it('the factories give one wording per case, with the code and status of the catalogue', () => {
    const cases: Array<[LapseError, string, RegExp]> = [
      [errors.notFound('abc'), 'LAPSE_NOT_FOUND', /^no live session abc$/],
      [errors.versionConflict('abc', 3, 2), 'LAPSE_VERSION_CONFLICT', /^session abc is at version 3, not 2$/],
      [errors.locked('abc', 'w1', 5), 'LAPSE_LOCKED', /^session abc is leased by w1 until 5$/],
      [errors.leaseLost('abc', 7), 'LAPSE_LOCKED', /^lease 7 on abc is no longer in force$/],
      [errors.closed('the store'), 'LAPSE_CLOSED', /^the store is closed$/],
      [errors.missingPeer('pg', 'lapse/postgres'), 'LAPSE_INVALID_OPTION', /lapse\/postgres needs the package 'pg': npm install pg/],
      [errors.peerFailed('better-sqlite3', 'lapse/sqlite', new Error('bad ELF')), 'LAPSE_INVALID_OPTION', /installed but failed to load: bad ELF/],
      [errors.invalidInput('x'), 'LAPSE_INVALID_INPUT', /^x$/],
      [errors.invalidOption('y'), 'LAPSE_INVALID_OPTION', /^y$/],
    ];
    for (const [e, code, message] of cases) {
      expect(e.code).toBe(code);
      expect(e.status).toBe(ERROR_CODES[code as keyof typeof ERROR_CODES].status);
      expect(e.message).toMatch(message);
    }
  });

  it('LapseError carries code, status and cause; backendError wraps foreign errors only', () => {
    const cause = new Error('ECONNREFUSED');
    const e = backendError(cause);
    expect(e).toBeInstanceOf(LapseError);
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe('LAPSE_BACKEND_UNAVAILABLE');
    expect(e.status).toBe(503);
    expect(e.cause).toBe(cause);
    expect(e.message).toContain('ECONNREFUSED');
    const own = new LapseError('LAPSE_LOCKED');
    expect(backendError(own)).toBe(own);
    expect(isLapseError(own, 'LAPSE_LOCKED')).toBe(true);
    expect(isLapseError(own, 'LAPSE_CLOSED')).toBe(false);
    expect(isLapseError(cause)).toBe(false);
  });
});
