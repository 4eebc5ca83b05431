import { memory } from '../../src/backends/memory/memory.js';
import { runConformance } from '../../src/testing/suite.js';

runConformance('memory', { make: ({ clock }) => memory({ clock }) });
