import type { Backend } from '../../packages/lapse/src/core/backend.js';
import { memory } from '../../packages/lapse/src/backends/memory/memory.js';
import { silentLogger } from '../../packages/lapse/src/util/logger.js';

/**
 * A memory backend that starts failing on demand, as a backend whose server went away: once
 * broken, the named methods (every method when none are named) reject with ECONNRESET.
 */
export function flakyBackend(methods?: string[]): { backend: Backend; breakIt: () => void } {
  const target = memory({ logger: silentLogger });
  let broken = false;
  const backend = new Proxy(target, {
    get(t, prop, receiver) {
      const v = Reflect.get(t, prop, receiver);
      if (typeof v !== 'function') return v;
      if (broken && (!methods || methods.includes(String(prop)))) return () => Promise.reject(new Error('ECONNRESET'));
      return v.bind(t);
    },
  }) as Backend;
  return {
    backend,
    breakIt: () => {
      broken = true;
    },
  };
}
