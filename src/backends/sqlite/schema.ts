/**
 * The SQLite schema of Lapse, its forward migrations, and the checks that keep Lapse from
 * writing into a file that is not its own.
 */

/** The schema version this code writes; kept in `PRAGMA user_version`. */
export const SCHEMA_VERSION = 1;

/** Marks a file as a Lapse database (`PRAGMA application_id`): the bytes of "Laps". */
export const APPLICATION_ID = 0x4c617073;

/**
 * `MIGRATIONS[v]` brings a database from version v to v + 1. Append only: a released
 * migration is never edited, because files in the field already ran it.
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
    secret_hash         TEXT NOT NULL,
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
    user_agent          TEXT
  );
  CREATE INDEX lapse_sessions_expires ON lapse_sessions (expires_at);
  CREATE INDEX lapse_sessions_recency ON lapse_sessions (recency);
  CREATE INDEX lapse_sessions_user ON lapse_sessions (user_id, recency) WHERE user_id IS NOT NULL;
  CREATE INDEX lapse_sessions_lock ON lapse_sessions (lock_expires_at) WHERE lock_expires_at IS NOT NULL;

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
];
