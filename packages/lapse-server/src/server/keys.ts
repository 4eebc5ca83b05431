import { hash as digest, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LapseError } from 'lapse/internal';
import { constantTimeEqual } from 'lapse/internal';

/** An admin key may do everything; an app key may create, validate, rotate and revoke. */
export type KeyKind = 'admin' | 'app';

/** A key as keys.json keeps it: never the key itself, only its SHA-256. */
export interface KeyRecord {
  id: string;
  name: string;
  kind: KeyKind;
  /** SHA-256 of the key, hex. */
  hash: string;
  createdAt: number;
  revokedAt: number | null;
}

/** Who a request authenticated as. */
export interface KeyIdentity {
  id: string;
  name: string;
  kind: KeyKind;
}

interface KeyFile {
  format: 'lapse-keys';
  version: 1;
  keys: KeyRecord[];
}

const FILE = 'keys.json';
const ENV_ADMIN: KeyIdentity = { id: 'env', name: 'LAPSE_ADMIN_KEY', kind: 'admin' };
/** How often a hit re-checks the file, so a key revoked from the CLI stops working soon. */
const RECHECK_MS = 1000;

/** SHA-256 of a key, hex: what keys.json keeps. One-shot `crypto.hash`, no Hash object per request. */
const sha256 = (key: string): string => digest('sha256', key, 'hex');

/** A fresh key: `lapse_admin_<random>` or `lapse_app_<random>` (32 random bytes, base64url). */
export function newKey(kind: KeyKind): string {
  return `lapse_${kind}_${randomBytes(32).toString('base64url')}`;
}

/**
 * The service's API keys, kept hashed in `<dataDir>/keys.json` (mode 0600). The file is
 * re-read when it changes, so keys made or revoked with `lapse keys` apply to a running
 * service without a restart.
 * @example
 * const ring = new KeyRing('./data');
 * const { key } = ring.create('web'); // printed once, stored hashed
 * ring.verify(key)?.kind; // 'app'
 */
export class KeyRing {
  readonly path: string;
  private keys: { rec: KeyRecord; hash: string; who: KeyIdentity }[] = [];
  private readonly envAdmin: string | undefined;
  /** Identity of the file last read (inode, size, times) and when it was read. */
  private signature = '';
  private readAt = 0;
  private checkedAt = 0;

  constructor(
    readonly dataDir: string,
    opts: { adminKey?: string | undefined } = {},
  ) {
    this.path = join(dataDir, FILE);
    this.envAdmin = opts.adminKey ? sha256(opts.adminKey) : undefined;
    this.reload(true);
  }

  /**
   * Makes an admin key when there is none (and none comes from LAPSE_ADMIN_KEY).
   * Returns the new key, to be shown once, or null when one already exists.
   */
  ensureAdmin(): string | null {
    if (this.envAdmin || this.keys.some((k) => k.rec.kind === 'admin' && k.rec.revokedAt === null)) return null;
    return this.create('admin', 'admin').key;
  }

  /** Makes a key; the returned `key` is the only time it exists in clear. */
  create(name: string, kind: KeyKind = 'app'): { key: string; record: KeyRecord } {
    if (typeof name !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
      throw new LapseError('LAPSE_INVALID_INPUT', 'a key name is 1-64 letters, digits, dots, dashes or underscores');
    }
    this.reload(true);
    if (this.keys.some((k) => k.rec.name === name && k.rec.revokedAt === null)) {
      throw new LapseError('LAPSE_INVALID_INPUT', `a key named '${name}' exists; revoke it first or pick another name`);
    }
    const key = newKey(kind);
    const record: KeyRecord = {
      id: `key_${randomBytes(6).toString('hex')}`,
      name,
      kind,
      hash: sha256(key),
      createdAt: Date.now(),
      revokedAt: null,
    };
    this.write([...this.keys.map((k) => k.rec), record]);
    return { key, record };
  }

  /** Every key record, revoked ones included (they hold no secret). */
  list(): KeyRecord[] {
    this.reload(true);
    return this.keys.map((k) => ({ ...k.rec }));
  }

  /** Revokes a key by id or name; false when no active key matches. */
  revoke(idOrName: string): boolean {
    this.reload(true);
    const hit = this.keys.find((k) => k.rec.revokedAt === null && (k.rec.id === idOrName || k.rec.name === idOrName));
    if (!hit) return false;
    const now = Date.now();
    this.write(this.keys.map((k) => (k === hit ? { ...k.rec, revokedAt: now } : k.rec)));
    return true;
  }

  /** The identity behind a presented key, or null. Compares hashes in constant time. */
  verify(presented: string): KeyIdentity | null {
    if (typeof presented !== 'string' || presented.length === 0 || presented.length > 512) return null;
    const hash = sha256(presented);
    if (this.envAdmin && constantTimeEqual(hash, this.envAdmin)) return ENV_ADMIN;
    // A miss always looks at the file (a key made a moment ago); a hit at most once a second.
    const found = this.match(hash);
    if (!found || Date.now() - this.checkedAt >= RECHECK_MS) {
      this.reload(false);
      return this.match(hash);
    }
    return found;
  }

  private match(hash: string): KeyIdentity | null {
    let found: KeyIdentity | null = null;
    // Every key is compared (no early exit): the time taken does not tell which one matched.
    for (const k of this.keys) {
      if (constantTimeEqual(hash, k.hash) && k.rec.revokedAt === null) found = k.who;
    }
    return found;
  }

  /**
   * Re-reads keys.json when it changed, or always with force. Every write renames a new file
   * into place, so a new inode shows a change at once; file times are coarse (two writes in
   * one tick can share them), so the content is also re-read at most once a second.
   */
  private reload(force: boolean): void {
    const now = Date.now();
    this.checkedAt = now;
    let signature: string;
    try {
      const st = statSync(this.path);
      signature = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    } catch {
      this.keys = [];
      this.signature = '';
      return;
    }
    if (!force && signature === this.signature && now - this.readAt < RECHECK_MS) return;
    this.keys = parseKeyFile(readFileSync(this.path, 'utf8'), this.path).map((rec) => ({
      rec,
      hash: rec.hash,
      who: Object.freeze({ id: rec.id, name: rec.name, kind: rec.kind }),
    }));
    this.signature = signature;
    this.readAt = now;
  }

  /** Writes the whole file to a temp file (0600) and renames it over the old one. */
  private write(keys: KeyRecord[]): void {
    if (!existsSync(this.dataDir)) mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    const body: KeyFile = { format: 'lapse-keys', version: 1, keys };
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600); // the umask may have loosened it
    renameSync(tmp, this.path);
    this.reload(true);
  }
}

function parseKeyFile(raw: string, path: string): KeyRecord[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new LapseError('LAPSE_INVALID_OPTION', `${path} is not valid JSON; fix or remove it`, { cause: err });
  }
  const file = parsed as Partial<KeyFile> | null;
  if (file?.format !== 'lapse-keys' || !Array.isArray(file.keys)) {
    throw new LapseError('LAPSE_INVALID_OPTION', `${path} is not a Lapse key file`);
  }
  for (const k of file.keys) {
    if (typeof k?.id !== 'string' || typeof k.name !== 'string' || (k.kind !== 'admin' && k.kind !== 'app') || !/^[0-9a-f]{64}$/.test(String(k.hash))) {
      throw new LapseError('LAPSE_INVALID_OPTION', `${path} holds a malformed key entry`);
    }
  }
  return file.keys;
}
