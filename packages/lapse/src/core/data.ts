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
 * LAPSE_INVALID_INPUT; text over `maxBytes` is LAPSE_PAYLOAD_TOO_LARGE. `encoded`: the caller's
 * JSON text of `value` (EncodedData), checked and returned instead of encoding again.
 */
export function encodeData(value: unknown, maxBytes: number, encoded?: string): string {
  // A plain value passes without building anything; only a failure walks again to name where.
  // Emptied first: a getter or proxy that threw during an earlier check may have left some.
  // (Checked before: setting an array's length is a runtime call even when it is 0 already.)
  if (ancestors.length !== 0) ancestors.length = 0;
  if (!isJson(value, 0)) {
    ancestors.length = 0;
    assertJson(value, '$', new Set(), 0);
    throw invalid('$', 'not JSON');
  }
  // Encoded only once the value is known to be JSON (a cycle or a deep value would throw in stringify).
  const text = encoded ?? JSON.stringify(value);
  // Cheap pre-check: UTF-8 is at most 3 bytes per UTF-16 unit.
  if (text.length * 3 > maxBytes && Buffer.byteLength(text) > maxBytes) {
    throw errors.payloadTooLarge('session data', Buffer.byteLength(text), maxBytes);
  }
  return text;
}

/**
 * Data an integration has encoded already: `text` is its JSON text and `value` is
 * JSON.parse(text) (express-session's own JSON round trip), passed to set/update under
 * ENCODED so the store checks it (encodeData with its text) but does not encode it again.
 */
export interface EncodedData {
  text: string;
  value: unknown;
}

/** The option key of EncodedData on store.set and store.update (internal to the integrations). */
export const ENCODED: unique symbol = Symbol('lapse.encoded');

/** Ancestors of the value being checked (a cycle is a value that is its own ancestor); reused, never reentered. */
const ancestors: object[] = [];

/**
 * The fast check: true when `value` is plain JSON, with no path strings or Set per call.
 * Cycles are found among the ancestors (at most MAX_DATA_DEPTH of them).
 */
function isJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value === null) return true;
      if (depth >= MAX_DATA_DEPTH || ancestors.includes(value)) return resetAncestors(depth);
      ancestors.push(value);
      let ok = true;
      if (Array.isArray(value)) {
        for (let i = 0; ok && i < value.length; i++) ok = isJson(value[i], depth + 1);
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) ok = false;
        else {
          const o = value as Record<string, unknown>;
          for (const key in o) {
            if (!Object.hasOwn(o, key)) continue;
            if (!isJson(o[key], depth + 1)) {
              ok = false;
              break;
            }
          }
        }
      }
      if (!ok) return resetAncestors(depth);
      ancestors.pop();
      return true;
    }
    default:
      return false;
  }
}

/** After a failure: the ancestors of this level and below are dropped, and the answer is false. */
function resetAncestors(depth: number): false {
  ancestors.length = depth;
  return false;
}

/** The slow check, only after isJson said no: throws naming the path of what is not JSON. */
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
