import { hash, randomFillSync, timingSafeEqual } from 'node:crypto';

/** Bytes of randomness in a session id and in its secret. */
export const ID_BYTES = 16;
export const SECRET_BYTES = 32;

const ID_LENGTH = 22; // base64url of 16 bytes
const SECRET_LENGTH = 43; // base64url of 32 bytes
/** 1 for the characters of base64url (A-Z a-z 0-9 - _), by char code. */
const B64URL_CHAR = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_') B64URL_CHAR[c.charCodeAt(0)] = 1;

// Random bytes come from the CSPRNG in 4 KiB refills: one system call per ~85
// sessions instead of two per session (the same trick as crypto.randomUUID's cache).
const pool = Buffer.allocUnsafe(4096);
let poolOffset = pool.length;

function random(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const out = pool.toString('base64url', poolOffset, poolOffset + bytes);
  // Wipe what was handed out so the pool never holds a secret that is in use.
  pool.fill(0, poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return out;
}

/** A fresh public session id (16 random bytes, base64url). */
export function newId(): string {
  return random(ID_BYTES);
}

/** A fresh secret (32 random bytes, base64url). Only its hash is ever stored. */
export function newSecret(): string {
  return random(SECRET_BYTES);
}

/** SHA-256 of a secret, base64url: what backends store. */
export function hashSecret(secret: string): string {
  return hash('sha256', secret, 'base64url');
}

/** Joins id and secret into the token the client holds: `<id>.<secret>`. */
export function formatToken(id: string, secret: string): string {
  return `${id}.${secret}`;
}

/** Splits a token; returns null for anything that is not `<id>.<secret>` of the right shape. */
export function parseToken(token: unknown): { id: string; secret: string } | null {
  if (typeof token !== 'string' || token.length !== ID_LENGTH + 1 + SECRET_LENGTH) return null;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (i === ID_LENGTH ? c !== 46 /* '.' */ : c > 127 || B64URL_CHAR[c] !== 1) return null;
  }
  return { id: detachedId(token), secret: token.slice(ID_LENGTH + 1) };
}

/**
 * The id part of a token as a string that holds no reference to the token. `slice` would
 * return a view into the token (V8 makes slices of 13+ characters views), and the id lives on
 * as a key in caches and the pending-access map: the secret must not live on with it. Slices
 * shorter than 13 characters are copies, and their concatenation is flattened into a string
 * of its own the first time it is hashed.
 */
function detachedId(token: string): string {
  const half = ID_LENGTH >> 1;
  return token.slice(0, half) + token.slice(half, ID_LENGTH);
}

/** Constant-time check that `secret` hashes to `storedHash`. */
export function verifySecret(secret: string, storedHash: string): boolean {
  return constantTimeEqual(hash('sha256', secret, 'base64url'), storedHash);
}

/** The hash of a secret no one holds: what a miss compares against, so that it costs what a wrong secret does. */
const DUMMY_HASH = hashSecret(newSecret());

/**
 * verifySecret against the stored hash, or, when there is no record, against a dummy hash (and
 * false): an unknown id then takes the time a known id with a wrong secret takes, so the
 * answer's timing does not tell whether an id is live.
 */
export function verifySecretOrDummy(secret: string, storedHash: string | undefined): boolean {
  const match = verifySecret(secret, storedHash ?? DUMMY_HASH);
  return match && storedHash !== undefined;
}

/** Room, in characters, for the two strings constantTimeEqual compares without allocating (digests are 43 or 64). */
const COMPARE_MAX = 128;
/** Two bytes a character (UTF-16): every string is written whole, none truncated to a byte. */
const compareScratch = Buffer.allocUnsafeSlow(4 * COMPARE_MAX);
/** Per length, the two views of compareScratch that timingSafeEqual reads. */
const compareViews: [Buffer, Buffer][] = [];

/**
 * `crypto.timingSafeEqual` over two strings (in practice base64url or hex digests): the time
 * taken depends only on their length, never on where they differ. Comparing the digests' text
 * spares decoding the stored one into bytes (the Buffer-to-Buffer form costs ~0.8 µs more per
 * hash-and-compare here), and writing both into one scratch buffer spares a Buffer per string
 * (~0.2 µs). UTF-16, not latin1, so that two strings compare equal only when every character
 * does (latin1 keeps the low byte of a character above U+00FF).
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  if (n > COMPARE_MAX) return timingSafeEqual(Buffer.from(a, 'utf16le'), Buffer.from(b, 'utf16le'));
  let views = compareViews[n];
  if (views === undefined) {
    views = [compareScratch.subarray(0, 2 * n), compareScratch.subarray(2 * COMPARE_MAX, 2 * COMPARE_MAX + 2 * n)];
    compareViews[n] = views;
  }
  // Synchronous from here to the compare: no other call can reuse the scratch in between.
  compareScratch.write(a, 0, 2 * n, 'utf16le');
  compareScratch.write(b, 2 * COMPARE_MAX, 2 * n, 'utf16le');
  return timingSafeEqual(views[0], views[1]);
}

/** True when `s` holds a space, a control character or DEL. */
function hasControlOrSpace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Whether a caller-chosen id is acceptable as a storage key (Map-like `set`). */
export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= 256 && !hasControlOrSpace(id);
}
