/**
 * A column of a batch as PostgreSQL array literal text ('{"a",NULL,3}'), the parameter of a
 * `$n::text[]` / `bigint[]` / `boolean[]` cast. node-postgres would build the same text from a
 * JS array (utils.arrayString), running two regex replaces and its value conversion per element;
 * a batch of inserts sends 21 columns, so this is on the login path. Elements: null/undefined
 * (NULL), strings (quoted; backslash and double quote escaped), numbers and booleans.
 */
export function arrayLiteral(values: readonly unknown[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const v = values[i];
    if (v === null || v === undefined) out += 'NULL';
    else if (typeof v === 'string') out += quoted(v);
    else if (typeof v === 'number' || typeof v === 'boolean') out += String(v);
    else throw new TypeError(`arrayLiteral: unsupported element of type ${typeof v}`);
  }
  return `${out}}`;
}

/**
 * An element in double quotes, backslash and double quote escaped. For a string with no control
 * character and no surrogate, JSON.stringify writes exactly that (it escapes only those four
 * kinds), natively: the JSON text of session data is such a string, and the longest element.
 */
function quoted(s: string): string {
  if (!NEEDS_SLOW.test(s)) return JSON.stringify(s);
  return `"${s.replace(/[\\"]/g, '\\$&')}"`;
}

/** What JSON.stringify would escape other than `"` and `\`: control characters, and surrogates (paired ones too, to keep the test simple). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const NEEDS_SLOW = /[\u0000-\u001f\ud800-\udfff]/;
