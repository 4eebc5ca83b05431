import { afterEach, describe, expect, it } from 'vitest';
import { memory } from '../../src/backends/memory/memory.js';
import { runBackendConformance } from '../../src/testing/suite.js';

runBackendConformance(
  { describe, it, expect, afterEach },
  {
    name: 'memory',
    make: ({ clock }) => memory({ clock }),
  },
);
