/**
 * `lapse/postgres`: sessions in PostgreSQL, on `pg`. Tables, counters, job leases and lease
 * notifications all live in one schema of your database: no extra service.
 * @example
 * import { createStore } from 'lapse';
 * import { postgres } from 'lapse/postgres';
 * const store = createStore({ backend: postgres({ url: process.env.DATABASE_URL, schema: 'lapse' }) });
 */
import { PostgresBackend } from './backend.js';
import type { PostgresOptions } from './options.js';

export { PostgresBackend } from './backend.js';
export type { PostgresOptions } from './options.js';
export { SCHEMA_VERSION } from './schema.js';

/** The PostgreSQL backend: `{ url }` (Lapse owns the pool) or `{ pool }` (yours), in `schema` (default 'public'). */
export function postgres(options: PostgresOptions): PostgresBackend {
  return new PostgresBackend(options);
}
