import { LapseError } from './errors.js';

/**
 * Checks that `value` is plain JSON (null, booleans, finite numbers, strings, arrays and
 * plain objects, no cycles) and returns its JSON text. Anything else is
 * LAPSE_INVALID_INPUT; text over `maxBytes` is LAPSE_PAYLOAD_TOO_LARGE.
 */
export function encodeData(value: unknown, maxBytes: number): string {
  assertJson(value, '$', new Set());
  const text = JSON.stringify(value);
  // Cheap pre-check: UTF-8 is at most 3 bytes per UTF-16 unit.
  if (text.length * 3 > maxBytes && Buffer.byteLength(text) > maxBytes) {
    throw new LapseError('LAPSE_PAYLOAD_TOO_LARGE', `session data is ${Buffer.byteLength(text)} bytes; the limit is ${maxBytes}`);
  }
  return text;
}

function assertJson(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (Number.isFinite(value)) return;
      throw invalid(path, `${value} is not a JSON number`);
    case 'object': {
      if (value === null) return;
      if (seen.has(value)) throw invalid(path, 'a cycle');
      seen.add(value);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) assertJson(value[i], `${path}[${i}]`, seen);
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          throw invalid(path, `a ${(value as object).constructor?.name ?? 'non-plain'} object`);
        }
        for (const key of Object.keys(value)) assertJson((value as Record<string, unknown>)[key], `${path}.${key}`, seen);
      }
      seen.delete(value);
      return;
    }
    default:
      throw invalid(path, `a ${typeof value}`);
  }
}

function invalid(path: string, what: string): LapseError {
  return new LapseError('LAPSE_INVALID_INPUT', `session data must be JSON; ${path} is ${what}`);
}
