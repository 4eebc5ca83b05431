import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { backendError, ERROR_CODES, isLapseError, LapseError } from '../src/core/errors.js';

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
const rows = [...doc.matchAll(/^\| `(LAPSE_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => ({ code: m[1], status: Number(m[2]) }));

describe('error catalogue', () => {
  it('docs/errors.md lists exactly the codes of src/errors.ts, with the same statuses', () => {
    expect(rows.map((r) => r.code).sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const r of rows) expect(ERROR_CODES[r.code as keyof typeof ERROR_CODES].status).toBe(r.status);
  });

  it('the design codes are all there, plus the two recorded in docs/decisions.md', () => {
    const design = ['LAPSE_INVALID_OPTION', 'LAPSE_INVALID_INPUT', 'LAPSE_NOT_FOUND', 'LAPSE_VERSION_CONFLICT', 'LAPSE_LOCKED',
      'LAPSE_LOCK_TIMEOUT', 'LAPSE_BACKEND_UNAVAILABLE', 'LAPSE_CLOSED', 'LAPSE_UNAUTHORIZED', 'LAPSE_FORBIDDEN', 'LAPSE_PAYLOAD_TOO_LARGE'];
    expect(Object.keys(ERROR_CODES).sort()).toEqual([...design, 'LAPSE_RATE_LIMITED', 'LAPSE_INTERNAL'].sort());
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
