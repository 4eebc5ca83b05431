import { memory } from '../../src/backends/memory.js';
import { runConformance } from './suite.js';

runConformance('memory', { make: ({ clock }) => memory({ clock }) });
