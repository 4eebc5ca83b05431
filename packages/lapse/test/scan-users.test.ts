import { expect, it } from 'vitest';
import { MemoryBackend } from '../src/backends/memory/memory.js';
import { PostgresBackend } from '../src/backends/postgres/backend.js';
import { RedisBackend } from '../src/backends/redis/backend.js';
import { SqliteBackend } from '../src/backends/sqlite/backend.js';

// The conformance suite runs its scanUsers case wherever a backend offers the method; every
// built-in backend must offer it, so that the case runs on all of them.
it('every built-in backend implements the optional scanUsers', () => {
  for (const backend of [MemoryBackend, SqliteBackend, RedisBackend, PostgresBackend]) {
    expect(typeof backend.prototype.scanUsers, backend.name).toBe('function');
  }
});
