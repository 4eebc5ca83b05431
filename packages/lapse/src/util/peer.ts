import { createRequire } from 'node:module';
import { errors } from '../core/errors.js';

const require = createRequire(import.meta.url);

function missing(err: unknown, name: string): boolean {
  const e = err as NodeJS.ErrnoException;
  // Only the peer itself missing, not one of its own dependencies.
  return e?.code === 'MODULE_NOT_FOUND' && typeof e.message === 'string' && e.message.includes(`'${name}'`);
}

/**
 * Loads an optional peer dependency of a subpath (better-sqlite3 for `lapse/sqlite`, ...) on
 * first use, so `npm i lapse` installs no driver and a missing one is LAPSE_INVALID_OPTION
 * naming the package to install, not a module-resolution crash.
 * @example const { Redis } = requirePeer<typeof import('ioredis')>('ioredis', 'lapse/redis');
 */
export function requirePeer<T>(name: string, subpath: string): T {
  try {
    return require(name) as T;
  } catch (err) {
    if (missing(err, name)) {
      throw errors.missingPeer(name, subpath, err);
    }
    throw errors.peerFailed(name, subpath, err);
  }
}

/** Fails like requirePeer when `name` cannot be found, without loading it (for peers used only as ESM or types). */
export function assertPeer(name: string, subpath: string): void {
  try {
    require.resolve(name);
  } catch (err) {
    if (missing(err, name)) throw errors.missingPeer(name, subpath, err);
  }
}
