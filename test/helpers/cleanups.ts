import { afterEach } from 'vitest';

/**
 * A list of clean-ups that an afterEach of the calling test file runs after every test, the
 * last pushed first (a store before the folder it lives in), each awaited.
 * @example const cleanups = cleanupsAfterEach(); cleanups.push(() => store.close());
 */
export function cleanupsAfterEach(): (() => unknown)[] {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });
  return cleanups;
}
