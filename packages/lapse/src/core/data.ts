import { errors, LapseError } from './errors.js';

/**
 * Deepest nesting of arrays and objects in `data` (the value itself is level 0). Checking
 * recurses once per level, and so does JSON.stringify: a bound far below any stack size keeps
 * a hostile value a LAPSE_INVALID_INPUT instead of a RangeError. Real session data is a few
 * levels deep.
 */
export const MAX_DATA_DEPTH = 64;

/**
 * Checks that `value` is plain JSON (null, booleans, finite numbers, strings, arrays and
 * plain objects, no cycles, at most MAX_DATA_DEPTH levels deep) and returns its JSON text. Anything else is
 * LAPSE_INVALID_INPUT; text over `maxBytes` is LAPSE_PAYLOAD_TOO_LARGE.
 */
export function encodeData(value: unknown, maxBytes: number): string {
  assertJson(value, '$', new Set(), 0);
  const text = JSON.stringify(value);
  // Cheap pre-check: UTF-8 is at most 3 bytes per UTF-16 unit.
  if (text.length * 3 > maxBytes && Buffer.byteLength(text) > maxBytes) {
    throw errors.payloadTooLarge('session data', Buffer.byteLength(text), maxBytes);
  }
  return text;
}

function assertJson(value: unknown, path: string, seen: Set<object>, depth: number): void {
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
      if (depth >= MAX_DATA_DEPTH) throw invalid(path, `nested deeper than ${MAX_DATA_DEPTH} levels`);
      seen.add(value);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) assertJson(value[i], `${path}[${i}]`, seen, depth + 1);
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          throw invalid(path, `a ${(value as object).constructor?.name ?? 'non-plain'} object`);
        }
        for (const key of Object.keys(value)) assertJson((value as Record<string, unknown>)[key], `${path}.${key}`, seen, depth + 1);
      }
      seen.delete(value);
      return;
    }
    default:
      throw invalid(path, `a ${typeof value}`);
  }
}

function invalid(path: string, what: string): LapseError {
  // Keys are the caller's text: a deep path of long keys would make a message of any length.
  const where = path.length > 120 ? `${path.slice(0, 120)}…` : path;
  return new LapseError('LAPSE_INVALID_INPUT', `session data must be JSON; ${where} is ${what}`);
}
