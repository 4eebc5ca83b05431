import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../../test/helpers/tmp.js';
import { sqlite } from '../../src/backends/sqlite/backend.js';
import { runBackendConformance } from '../../src/testing/suite.js';

// File-backed (WAL on disk), a fresh file per test.
let dirs: ReturnType<typeof tempDir>[] = [];
let n = 0;

runBackendConformance(
  { describe, it, expect, afterEach },
  {
    name: 'sqlite',
    make: ({ clock }) => {
      const tmp = tempDir('lapse-sqlite-conf-');
      dirs.push(tmp);
      return sqlite({ path: join(tmp.dir, `conformance-${n++}.db`), clock });
    },
    cleanup: () => {
      for (const d of dirs) d.cleanup();
      dirs = [];
    },
  },
);

// The same file with group commit and synchronous FULL: writes of one turn share a transaction.
runBackendConformance(
  { describe, it, expect, afterEach },
  {
    name: 'sqlite grouped',
    make: ({ clock }) => {
      const tmp = tempDir('lapse-sqlite-conf-');
      dirs.push(tmp);
      return sqlite({ path: join(tmp.dir, `conformance-${n++}.db`), clock, synchronous: 'full' }).grouped();
    },
    cleanup: () => {
      for (const d of dirs) d.cleanup();
      dirs = [];
    },
  },
);
