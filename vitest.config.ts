import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
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
