/**
 * `lapse/sqlite`: sessions in one SQLite file, on `better-sqlite3` (an optional peer: `npm i better-sqlite3`).
 * @example
 * import { createStore } from 'lapse';
 * import { sqlite } from 'lapse/sqlite';
 * const store = createStore({ backend: sqlite({ path: './data/sessions.db' }) });
 */
export { SCHEMA_VERSION, SqliteBackend, type SqliteOptions, sqlite } from './backends/sqlite/backend.js';
