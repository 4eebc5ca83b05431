/**
 * The SQLite schema of Lapse, its forward migrations, and the checks that keep Lapse from
 * writing into a file that is not its own.
 */

import { HOME_SLOT_SQL } from './slot.js';

/** The schema version this code writes; kept in `PRAGMA user_version`. */
export const SCHEMA_VERSION = 2;

/**
 * The oldest schema version whose code may still open and write a file of this version: kept
 * in `lapse_meta` under `'readable_by'`, written each time the file is migrated; a file
 * without it is for its own version's code only. A newer file is refused unless its
 * `readable_by` is this version or older, so that during a rolling deploy the processes one
 * migration behind keep running. A migration may keep it below its own version only if every
 * statement of those versions still works and keeps the counts right (a new index, table or
 * trigger, a column with a default); anything else sets it to its own version.
 */
export const READABLE_BY = 2;

/** Marks a file as a Lapse database (`PRAGMA application_id`): the bytes of "Laps". */
export const APPLICATION_ID = 0x4c617073;

/**
 * The indexes and the counting triggers of lapse_sessions, as v1 created them and v2 creates
 * them again on the rebuilt table. Released text: a change to either is a new migration.
 */
const SESSION_INDEXES = `
  CREATE INDEX lapse_sessions_expires ON lapse_sessions (expires_at);
  CREATE INDEX lapse_sessions_recency ON lapse_sessions (recency);
  CREATE INDEX lapse_sessions_user ON lapse_sessions (user_id, recency) WHERE user_id IS NOT NULL;
  CREATE INDEX lapse_sessions_lock ON lapse_sessions (lock_expires_at) WHERE lock_expires_at IS NOT NULL;
`;

const SESSION_TRIGGERS = `
  -- The counters live in the same transaction as the rows they count, so stats never scan
  -- and can never drift, whichever statement (or process) changed the rows.
  CREATE TRIGGER lapse_sessions_ai AFTER INSERT ON lapse_sessions BEGIN
    UPDATE lapse_meta SET value = value + 1 WHERE key = 'sessions';
    INSERT INTO lapse_users (user_id, sessions) SELECT NEW.user_id, 1 WHERE NEW.user_id IS NOT NULL
      ON CONFLICT (user_id) DO UPDATE SET sessions = sessions + 1;
  END;
  CREATE TRIGGER lapse_sessions_ad AFTER DELETE ON lapse_sessions BEGIN
    UPDATE lapse_meta SET value = value - 1 WHERE key = 'sessions';
    UPDATE lapse_users SET sessions = sessions - 1 WHERE user_id = OLD.user_id;
    DELETE FROM lapse_users WHERE user_id = OLD.user_id AND sessions <= 0;
  END;
  CREATE TRIGGER lapse_sessions_au AFTER UPDATE OF user_id ON lapse_sessions
  WHEN OLD.user_id IS NOT NEW.user_id BEGIN
    UPDATE lapse_users SET sessions = sessions - 1 WHERE user_id = OLD.user_id;
    DELETE FROM lapse_users WHERE user_id = OLD.user_id AND sessions <= 0;
    INSERT INTO lapse_users (user_id, sessions) SELECT NEW.user_id, 1 WHERE NEW.user_id IS NOT NULL
      ON CONFLICT (user_id) DO UPDATE SET sessions = sessions + 1;
  END;
`;

/** The columns of lapse_sessions after id, the same in v1 and v2. */
const SESSION_COLUMN_DEFS = `    secret_hash         TEXT NOT NULL,
    user_id             TEXT,
    data                TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    last_accessed_at    INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    idle_timeout        INTEGER NOT NULL,
    access_count        INTEGER NOT NULL,
    version             INTEGER NOT NULL,
    recency             INTEGER NOT NULL,
    lock_owner          TEXT,
    lock_fence          INTEGER,
    lock_expires_at     INTEGER,
    ip                  TEXT,
    user_agent          TEXT`;

/** Their names, in that order: the first word of each definition. */
const SESSION_COLUMNS = SESSION_COLUMN_DEFS.split(',')
  .map((def) => def.trim().split(/\s+/)[0])
  .join(', ');

/**
 * `MIGRATIONS[v]` brings a database from version v to v + 1. Append only: a released
 * migration is never edited, because files in the field already ran it. They run with
 * `lapse_home_slot` registered on the connection (see open.ts).
 */
export const MIGRATIONS: readonly string[] = [
  // v0 -> v1: sessions, per-user counts, counters, job leases.
  `
  CREATE TABLE lapse_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO lapse_meta (key, value) VALUES ('sessions', 0), ('users', 0), ('fence', 0);

  CREATE TABLE lapse_users (
    user_id  TEXT PRIMARY KEY,
    sessions INTEGER NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE lapse_sessions (
    id                  TEXT NOT NULL PRIMARY KEY,
${SESSION_COLUMN_DEFS}
  );
  ${SESSION_INDEXES}
  ${SESSION_TRIGGERS}
  CREATE TRIGGER lapse_users_ai AFTER INSERT ON lapse_users BEGIN
    UPDATE lapse_meta SET value = value + 1 WHERE key = 'users';
  END;
  CREATE TRIGGER lapse_users_ad AFTER DELETE ON lapse_users BEGIN
    UPDATE lapse_meta SET value = value - 1 WHERE key = 'users';
  END;

  CREATE TABLE lapse_leases (
    key        TEXT PRIMARY KEY,
    token      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX lapse_leases_expires ON lapse_leases (expires_at);
  `,
  // v1 -> v2: sessions keyed by slot, a hash of the id (see slot.ts), so that a read by id is
  // one search of the table instead of its id index and then the table. Every row moves to
  // its home slot, in slot order; the rare one whose home is taken gets a negative slot.
  // The counts in lapse_meta and lapse_users stay right: the same rows, and DROP TABLE fires
  // no trigger.
  `
  ALTER TABLE lapse_sessions RENAME TO lapse_sessions_v1;
  CREATE TABLE lapse_sessions (
    slot                INTEGER PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
${SESSION_COLUMN_DEFS}
  );
  INSERT OR IGNORE INTO lapse_sessions (slot, id, ${SESSION_COLUMNS})
    SELECT ${HOME_SLOT_SQL}(id), id, ${SESSION_COLUMNS} FROM lapse_sessions_v1 ORDER BY 1;
  INSERT INTO lapse_sessions (slot, id, ${SESSION_COLUMNS})
    SELECT -row_number() OVER (ORDER BY id), id, ${SESSION_COLUMNS} FROM lapse_sessions_v1
    WHERE id NOT IN (SELECT id FROM lapse_sessions);
  DROP TABLE lapse_sessions_v1;
  ${SESSION_INDEXES}
  ${SESSION_TRIGGERS}
  `,
];
