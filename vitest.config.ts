import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const lib = fileURLToPath(new URL('./packages/lapse/src/', import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run on the library's source: `lapse` and `lapse/<subpath>` (as lapse-server imports them)
    // resolve to the entry files, so a test and the server code under test share one copy.
    alias: [
      { find: /^lapse$/, replacement: `${lib}index.ts` },
      { find: /^lapse\/(?!package\.json$)(.+)$/, replacement: `${lib}$1.ts` },
    ],
  },
  test: {
    // Each package's tests, and the workspace's own (README examples, footprint of the packed packages).
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // One scratch folder per run for the tests that install the packed packages (footprint, README examples).
    globalSetup: ['./test/helpers/scratch-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    // Lapse's tests spawn real servers and processes; two cores, so keep parallelism modest.
    maxWorkers: 2,
  },
});
