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
    // A factory of core/errors.ts counts as a use of its code where it is called.
    const catalogue = readFileSync(new URL('../src/core/errors.ts', import.meta.url), 'utf8');
    const factoryCode = new Map<string, string>();
    for (const m of catalogue.matchAll(/^ {2}(\w+): \([^)]*\)[^\n]*=>\s*new LapseError\(\s*'(LAPSE_[A-Z_]+)'/gm)) factoryCode.set(m[1] as string, m[2] as string);
    expect(factoryCode.get('lockTimeout')).toBe('LAPSE_LOCK_TIMEOUT');
    const used = new Set<string>();
    for (const pkg of ['lapse', 'lapse-server']) {
      const src = fileURLToPath(new URL(`../../${pkg}/src`, import.meta.url));
      for (const e of readdirSync(src, { recursive: true, withFileTypes: true })) {
        if (!e.isFile() || !e.name.endsWith('.ts') || (pkg === 'lapse' && e.name === 'errors.ts' && e.parentPath.endsWith('core'))) continue;
        const text = readFileSync(join(e.parentPath, e.name), 'utf8');
        for (const m of text.matchAll(CODE_USE)) used.add(m[1] as string);
        for (const m of text.matchAll(/\b(?:errors|lapseErrors)\.(\w+)\(/g)) {
          const code = factoryCode.get(m[1] as string);
          if (code) used.add(code);
        }
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
      [errors.optionMustBe('idleTimeout', 'a duration', 'soon'), 'LAPSE_INVALID_OPTION', /^idleTimeout must be a duration \(got "soon"\)$/],
      [errors.optionMustBe('options', 'an object'), 'LAPSE_INVALID_OPTION', /^options must be an object$/],
      [errors.optionMustBe('x', 'a number', undefined), 'LAPSE_INVALID_OPTION', /^x must be a number \(got undefined\)$/],
      [errors.inputMustBe('limit', 'a number >= 0'), 'LAPSE_INVALID_INPUT', /^limit must be a number >= 0$/],
      [errors.unknownOption('prot'), 'LAPSE_INVALID_OPTION', /^unknown option 'prot'$/],
      [errors.unknownOption('prot', { kind: 'setting', where: 'lapse.json', known: ['port', 'host'] }), 'LAPSE_INVALID_OPTION', /^unknown setting 'prot' in lapse\.json \(known: port, host\)$/],
      [errors.required('userId'), 'LAPSE_INVALID_INPUT', /^userId is required$/],
      [errors.invalidToken(), 'LAPSE_UNAUTHORIZED', /^invalid or expired session token$/],
      [errors.unauthorized('log in'), 'LAPSE_UNAUTHORIZED', /^log in$/],
      [errors.forbidden('admin only'), 'LAPSE_FORBIDDEN', /^admin only$/],
      [errors.payloadTooLarge('session data', 300, 256), 'LAPSE_PAYLOAD_TOO_LARGE', /^session data is 300 bytes; the limit is 256$/],
      [errors.lockTimeout('abc', 50), 'LAPSE_LOCK_TIMEOUT', /^session abc is still leased after waiting 50 ms$/],
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
