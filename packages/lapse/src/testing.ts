export * from './testing/suite.js';
