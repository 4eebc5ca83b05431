/**
 * The PostgreSQL schema of Lapse: tables, indexes and the functions that hold each policy
 * (caps, leases, versions) in one statement, like the Redis backend's Lua scripts: one round
 * trip per call, atomic because a statement is its own transaction.
 */
import type { SchemaNames } from './names.js';

/** The schema version this code writes; kept in `lapse_schema`. */
export const SCHEMA_VERSION = 6;

/**
 * The oldest schema version whose code may still use a schema of this version: kept in
 * `lapse_schema.readable_by`, written each time the schema is migrated (a schema without it is
 * for its own version's code only). A newer schema is refused unless its `readable_by` is this
 * version or older, so that during a rolling deploy the processes one migration behind keep
 * running. A migration may keep it below its own version only if every statement and function
 * those versions call still works and keeps the counts right (a new function or index, a
 * column with a default); anything else sets it to its own version. Lapse releases from
 * before the marker do not read it.
 */
export const READABLE_BY = 6;

/** What `lapse_schema.application` holds in a schema that is Lapse's. */
export const APPLICATION = 'lapse';

/** Tables Lapse creates: a schema holding any of them without a `lapse_schema` row is not Lapse's. */
export const TABLES = ['lapse_schema', 'lapse_sessions', 'lapse_users', 'lapse_counters', 'lapse_leases'] as const;

/** A custom SQLSTATE per refusal, mapped back to LapseError codes in errors.ts. */
export const REFUSALS = {
  LX400: 'LAPSE_INVALID_INPUT',
  LX404: 'LAPSE_NOT_FOUND',
  LX409: 'LAPSE_VERSION_CONFLICT',
  LX423: 'LAPSE_LOCKED',
} as const;

/** Rows the session and user totals are split over (see lapse_counters). */
const COUNTER_SHARDS = 64;
/** This connection's counter row. */
const SHARD = `pg_backend_pid() % ${COUNTER_SHARDS}`;

/** Wall time of the database in ms: the one clock every node of a job lease shares. */
export const DB_NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/**
 * `MIGRATIONS[v]` brings a schema from version v to v + 1. Append only: a released migration
 * is never edited. Each runs in the migrating transaction, under the migration lock.
 */
/** The JSON of a session `r` that ends now: its id, user and why (`live` when it had not expired yet). */
const ended = (r: string, live: string) =>
  `json_build_object('id', ${r}.id, 'userId', ${r}.user_id, 'reason', CASE WHEN ${r}.expires_at > p_now THEN '${live}'
        WHEN ${r}.expires_at >= ${r}.absolute_expires_at THEN 'absolute' ELSE 'idle' END)`;

export const MIGRATIONS: readonly ((n: SchemaNames) => string)[] = [
  // v0 -> v1
  (n) => {
    const s = n.q;
    const leased = (r: string) =>
      `${r}.lock_fence IS NOT NULL AND ${r}.lock_expires_at > p_now AND ${r}.lock_fence IS DISTINCT FROM p_fence`;
    const refuseLeased = (r: string) =>
      `RAISE EXCEPTION USING ERRCODE = 'LX423', MESSAGE = format('session %s is leased by %s until %s', ${r}.id, ${r}.lock_owner, ${r}.lock_expires_at);`;
    const live = (r: string) =>
      `IF ${r}.id IS NULL OR ${r}.expires_at <= p_now THEN
        RAISE EXCEPTION USING ERRCODE = 'LX404', MESSAGE = format('no live session %s', p_id);
      END IF;`;
    const fn = (sig: string, returns: string, body: string) =>
      `CREATE FUNCTION ${s}.${sig} RETURNS ${returns} LANGUAGE plpgsql AS $fn$\n${body}\n$fn$;`;
    return `
  CREATE TABLE ${s}.lapse_sessions (
    id                  text PRIMARY KEY,
    secret_hash         text NOT NULL,
    user_id             text,
    data                text NOT NULL,
    created_at          bigint NOT NULL,
    last_accessed_at    bigint NOT NULL,
    expires_at          bigint NOT NULL,
    absolute_expires_at bigint NOT NULL,
    idle_timeout        bigint NOT NULL,
    access_count        bigint NOT NULL,
    version             bigint NOT NULL,
    recency             bigint NOT NULL,
    lock_owner          text,
    lock_fence          bigint,
    lock_expires_at     bigint,
    ip                  text,
    user_agent          text
  );
  CREATE INDEX lapse_sessions_expires ON ${s}.lapse_sessions (expires_at);
  CREATE INDEX lapse_sessions_recency ON ${s}.lapse_sessions (recency);
  CREATE INDEX lapse_sessions_user ON ${s}.lapse_sessions (user_id, recency) WHERE user_id IS NOT NULL;
  CREATE INDEX lapse_sessions_lock ON ${s}.lapse_sessions (lock_expires_at) WHERE lock_expires_at IS NOT NULL;

  -- Counts kept in the transaction that changes the rows, so stats never scan. The totals are
  -- split over ${COUNTER_SHARDS} rows, each connection writing its own (by backend pid): one row would
  -- make every insert and delete of every connection wait for the previous one's commit.
  CREATE TABLE ${s}.lapse_users (user_id text PRIMARY KEY, sessions bigint NOT NULL);
  CREATE TABLE ${s}.lapse_counters (shard int PRIMARY KEY, sessions bigint NOT NULL, users bigint NOT NULL);
  INSERT INTO ${s}.lapse_counters (shard, sessions, users) SELECT g, 0, 0 FROM generate_series(0, ${COUNTER_SHARDS - 1}) g;

  -- Order of last access, and fencing numbers: both only ever grow, across every process.
  CREATE SEQUENCE ${s}.lapse_recency;
  CREATE SEQUENCE ${s}.lapse_fence;

  CREATE TABLE ${s}.lapse_leases (key text PRIMARY KEY, token text NOT NULL, expires_at bigint NOT NULL);
  CREATE INDEX lapse_leases_expires ON ${s}.lapse_leases (expires_at);

  -- Lock order, everywhere: session rows, then lapse_users rows in user_id order, then this
  -- connection's counter shard, last. Rows taken to make room are taken with SKIP LOCKED, so a
  -- writer holding a user's row never waits for a session row (see docs/postgres.md).
  ${fn('lapse_count_up(p_user text)', 'void', `DECLARE fresh boolean := false;
  BEGIN
    IF p_user IS NOT NULL THEN
      INSERT INTO ${s}.lapse_users AS u (user_id, sessions) VALUES (p_user, 1)
        ON CONFLICT (user_id) DO UPDATE SET sessions = u.sessions + 1 RETURNING (xmax = 0) INTO fresh;
    END IF;
    UPDATE ${s}.lapse_counters SET sessions = sessions + 1, users = users + fresh::int WHERE shard = ${SHARD};
  END;`)}

  ${fn('lapse_count_down(p_users text[], p_n bigint)', 'void', `DECLARE gone bigint := 0;
  BEGIN
    IF p_n = 0 THEN RETURN; END IF;
    IF p_users IS NOT NULL AND cardinality(p_users) > 0 THEN
      PERFORM 1 FROM ${s}.lapse_users WHERE user_id = ANY (p_users) ORDER BY user_id FOR UPDATE;
      UPDATE ${s}.lapse_users x SET sessions = x.sessions - c.n
        FROM (SELECT u, count(*) AS n FROM unnest(p_users) AS u WHERE u IS NOT NULL GROUP BY u) c WHERE x.user_id = c.u;
      WITH g AS (DELETE FROM ${s}.lapse_users WHERE user_id = ANY (p_users) AND sessions <= 0 RETURNING 1)
        SELECT count(*) INTO gone FROM g;
    END IF;
    UPDATE ${s}.lapse_counters SET sessions = sessions - p_n, users = users - gone WHERE shard = ${SHARD};
  END;`)}

  -- Locks a user's row (made when missing) before its sessions are counted against its cap.
  ${fn('lapse_hold_user(p_user text)', 'bigint', `DECLARE n bigint; fresh boolean;
  BEGIN
    INSERT INTO ${s}.lapse_users AS u (user_id, sessions) VALUES (p_user, 0)
      ON CONFLICT (user_id) DO UPDATE SET sessions = u.sessions RETURNING sessions, (xmax = 0) INTO n, fresh;
    IF fresh THEN UPDATE ${s}.lapse_counters SET users = users + 1 WHERE shard = ${SHARD}; END IF;
    RETURN n;
  END;`)}

  -- Removes one row that a caller holds, and reports it.
  ${fn('lapse_end(p_id text, p_user text)', 'void', `BEGIN
    DELETE FROM ${s}.lapse_sessions WHERE id = p_id;
    PERFORM ${s}.lapse_count_down(ARRAY[p_user], 1);
  END;`)}

  ${fn('lapse_cap_user(p_user text, p_now bigint, p_cap bigint, INOUT ended json[])', 'json[]', `DECLARE n bigint; e record;
  BEGIN
    IF p_cap IS NULL THEN RETURN; END IF;
    n := ${s}.lapse_hold_user(p_user);
    WHILE n >= p_cap LOOP
      SELECT id, user_id, expires_at, absolute_expires_at INTO e FROM ${s}.lapse_sessions
        WHERE user_id = p_user ORDER BY recency LIMIT 1 FOR UPDATE SKIP LOCKED;
      EXIT WHEN NOT FOUND;
      PERFORM ${s}.lapse_end(e.id, e.user_id);
      ended := ended || ${ended('e', 'evicted')};
      n := n - 1;
    END LOOP;
  END;`)}

  ${fn(
    `lapse_insert(p_id text, p_secret text, p_user text, p_data text, p_created bigint, p_last bigint, p_expires bigint,
      p_abs bigint, p_idle bigint, p_count bigint, p_version bigint, p_lock_owner text, p_lock_fence bigint,
      p_lock_expires bigint, p_ip text, p_ua text, p_now bigint, p_max bigint, p_max_user bigint, p_replace boolean,
      p_fence bigint)`,
    'json',
    `DECLARE r ${s}.lapse_sessions; e record; ended json[] := '{}'; n bigint;
  BEGIN
    -- Only a global cap needs every insert in turn: the count it checks must not move meanwhile.
    IF p_max IS NOT NULL THEN PERFORM pg_advisory_xact_lock(${n.writeLock}); END IF;
    SELECT * INTO r FROM ${s}.lapse_sessions WHERE id = p_id FOR UPDATE;
    IF FOUND AND r.expires_at > p_now THEN
      IF NOT p_replace THEN
        RAISE EXCEPTION USING ERRCODE = 'LX400', MESSAGE = format('a session with id %s exists', p_id);
      END IF;
      IF ${leased('r')} THEN ${refuseLeased('r')} END IF;
      IF p_user IS NOT NULL AND p_user IS DISTINCT FROM r.user_id THEN
        ended := ${s}.lapse_cap_user(p_user, p_now, p_max_user, ended);
      END IF;
      IF p_user IS DISTINCT FROM r.user_id THEN
        PERFORM 1 FROM ${s}.lapse_users WHERE user_id IN (p_user, r.user_id) ORDER BY user_id FOR UPDATE;
        PERFORM ${s}.lapse_count_down(ARRAY[r.user_id], 1);
        PERFORM ${s}.lapse_count_up(p_user);
      END IF;
      UPDATE ${s}.lapse_sessions SET secret_hash = p_secret, user_id = p_user, data = p_data, last_accessed_at = p_last,
        expires_at = least(p_last + p_idle, r.absolute_expires_at), idle_timeout = p_idle, ip = p_ip, user_agent = p_ua,
        version = version + 1, recency = nextval('${s}.lapse_recency')
        WHERE id = p_id RETURNING * INTO r;
      RETURN json_build_object('record', row_to_json(r), 'ended', array_to_json(ended));
    END IF;
    IF FOUND THEN
      PERFORM ${s}.lapse_end(r.id, r.user_id);
      ended := ended || ${ended('r', 'evicted')};
    END IF;
    IF p_user IS NOT NULL THEN ended := ${s}.lapse_cap_user(p_user, p_now, p_max_user, ended); END IF;
    IF p_max IS NOT NULL THEN
      SELECT sum(sessions) INTO n FROM ${s}.lapse_counters;
      WHILE n >= p_max LOOP
        -- An expired session makes room before any live one is evicted.
        SELECT id, user_id, expires_at, absolute_expires_at INTO e FROM ${s}.lapse_sessions
          ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED;
        EXIT WHEN NOT FOUND;
        IF e.expires_at > p_now THEN
          SELECT id, user_id, expires_at, absolute_expires_at INTO e FROM ${s}.lapse_sessions
            ORDER BY recency LIMIT 1 FOR UPDATE SKIP LOCKED;
        END IF;
        PERFORM ${s}.lapse_end(e.id, e.user_id);
        ended := ended || ${ended('e', 'evicted')};
        n := n - 1;
      END LOOP;
    END IF;
    INSERT INTO ${s}.lapse_sessions VALUES (p_id, p_secret, p_user, p_data, p_created, p_last, p_expires, p_abs, p_idle,
      p_count, p_version, nextval('${s}.lapse_recency'), p_lock_owner, p_lock_fence, p_lock_expires, p_ip, p_ua)
      RETURNING * INTO r;
    PERFORM ${s}.lapse_count_up(p_user);
    RETURN json_build_object('record', row_to_json(r), 'ended', array_to_json(ended));
  END;`,
  )}

  ${fn('lapse_update(p_id text, p_data text, p_now bigint, p_expected bigint, p_fence bigint)', 'json', `DECLARE r ${s}.lapse_sessions;
  BEGIN
    SELECT * INTO r FROM ${s}.lapse_sessions WHERE id = p_id FOR UPDATE;
    ${live('r')}
    IF ${leased('r')} THEN ${refuseLeased('r')} END IF;
    IF p_expected IS NOT NULL AND p_expected <> r.version THEN
      RAISE EXCEPTION USING ERRCODE = 'LX409', MESSAGE = format('session %s is at version %s, not %s', p_id, r.version, p_expected);
    END IF;
    UPDATE ${s}.lapse_sessions SET data = p_data, version = version + 1 WHERE id = p_id RETURNING * INTO r;
    RETURN row_to_json(r);
  END;`)}

  ${fn('lapse_remove(p_id text, p_now bigint, p_fence bigint, p_force boolean)', 'json', `DECLARE r ${s}.lapse_sessions;
  BEGIN
    SELECT * INTO r FROM ${s}.lapse_sessions WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR r.expires_at <= p_now THEN RETURN NULL; END IF;
    IF NOT p_force AND ${leased('r')} THEN ${refuseLeased('r')} END IF;
    PERFORM ${s}.lapse_end(r.id, r.user_id);
    RETURN row_to_json(r);
  END;`)}

  -- Same user, same count: no write lock, only the row's.
  ${fn('lapse_rotate(p_id text, p_next text, p_secret text, p_now bigint, p_fence bigint)', 'json', `DECLARE r ${s}.lapse_sessions;
  BEGIN
    SELECT * INTO r FROM ${s}.lapse_sessions WHERE id = p_id FOR UPDATE;
    ${live('r')}
    IF ${leased('r')} THEN ${refuseLeased('r')} END IF;
    IF EXISTS (SELECT 1 FROM ${s}.lapse_sessions WHERE id = p_next) THEN
      RAISE EXCEPTION USING ERRCODE = 'LX400', MESSAGE = format('a session with id %s exists', p_next);
    END IF;
    UPDATE ${s}.lapse_sessions SET id = p_next, secret_hash = p_secret, last_accessed_at = p_now,
      expires_at = least(p_now + idle_timeout, absolute_expires_at), lock_owner = NULL, lock_fence = NULL,
      lock_expires_at = NULL, recency = nextval('${s}.lapse_recency')
      WHERE id = p_id RETURNING * INTO r;
    RETURN row_to_json(r);
  END;`)}

  ${fn('lapse_remove_user(p_user text, p_now bigint, p_except text)', 'json', `DECLARE out json; n bigint;
  BEGIN
    WITH d AS (DELETE FROM ${s}.lapse_sessions WHERE user_id = p_user AND id IS DISTINCT FROM p_except
      RETURNING id, user_id, expires_at, absolute_expires_at)
    SELECT coalesce(json_agg(${ended('d', 'revoked')}), '[]'::json), count(*) INTO out, n FROM d;
    PERFORM ${s}.lapse_count_down(array_fill(p_user, ARRAY[n::int]), n);
    RETURN out;
  END;`)}

  -- One bounded batch: rows other transactions hold are skipped (the next sweep gets them).
  ${fn('lapse_sweep(p_now bigint, p_limit int)', 'json', `DECLARE out json; n bigint; users text[];
  BEGIN
    WITH d AS (DELETE FROM ${s}.lapse_sessions WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM ${s}.lapse_sessions WHERE expires_at <= p_now ORDER BY expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED))
      RETURNING id, user_id, expires_at, absolute_expires_at)
    SELECT coalesce(json_agg(${ended('d', 'idle')} ORDER BY d.expires_at), '[]'::json), count(*),
        array_agg(d.user_id) FILTER (WHERE d.user_id IS NOT NULL)
      INTO out, n, users FROM d;
    PERFORM ${s}.lapse_count_down(users, n);
    RETURN out;
  END;`)}

  ${fn('lapse_lock(p_id text, p_owner text, p_ttl bigint, p_now bigint)', 'json', `DECLARE r ${s}.lapse_sessions;
  BEGIN
    SELECT * INTO r FROM ${s}.lapse_sessions WHERE id = p_id FOR UPDATE;
    ${live('r')}
    IF r.lock_fence IS NOT NULL AND r.lock_expires_at > p_now THEN ${refuseLeased('r')} END IF;
    UPDATE ${s}.lapse_sessions SET lock_owner = p_owner, lock_fence = nextval('${s}.lapse_fence'),
      lock_expires_at = p_now + p_ttl WHERE id = p_id RETURNING * INTO r;
    RETURN json_build_object('owner', r.lock_owner, 'fence', r.lock_fence, 'expiresAt', r.lock_expires_at);
  END;`)}

  ${fn('lapse_extend(p_id text, p_fence bigint, p_ttl bigint, p_now bigint)', 'json', `DECLARE r ${s}.lapse_sessions;
  BEGIN
    SELECT * INTO r FROM ${s}.lapse_sessions WHERE id = p_id FOR UPDATE;
    ${live('r')}
    IF r.lock_fence IS DISTINCT FROM p_fence OR r.lock_expires_at <= p_now THEN
      RAISE EXCEPTION USING ERRCODE = 'LX423', MESSAGE = format('lease %s on %s is no longer in force', p_fence, p_id);
    END IF;
    UPDATE ${s}.lapse_sessions SET lock_expires_at = p_now + p_ttl WHERE id = p_id RETURNING * INTO r;
    RETURN json_build_object('owner', r.lock_owner, 'fence', r.lock_fence, 'expiresAt', r.lock_expires_at);
  END;`)}

  -- The release is announced at commit (NOTIFY is transactional) to every listening process.
  ${fn('lapse_unlock(p_id text, p_fence bigint, p_now bigint)', 'boolean', `DECLARE r ${s}.lapse_sessions;
  BEGIN
    SELECT * INTO r FROM ${s}.lapse_sessions WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR r.expires_at <= p_now OR r.lock_fence IS DISTINCT FROM p_fence THEN RETURN false; END IF;
    UPDATE ${s}.lapse_sessions SET lock_owner = NULL, lock_fence = NULL, lock_expires_at = NULL WHERE id = p_id;
    PERFORM pg_notify('${n.unlockChannel}', p_id);
    RETURN r.lock_expires_at > p_now;
  END;`)}

  ${fn('lapse_clear()', 'void', `BEGIN
    PERFORM pg_advisory_xact_lock(${n.writeLock});
    DELETE FROM ${s}.lapse_sessions;
    DELETE FROM ${s}.lapse_users;
    UPDATE ${s}.lapse_counters SET sessions = 0, users = 0;
  END;`)}
  `;
  },
  // v1 -> v2: room on every page for the new version of a row, so that an update (data and
  // version: no indexed column) stays on its page as a HOT update, with no index entry to add.
  (n) => `ALTER TABLE ${n.q}.lapse_sessions SET (fillfactor = 80);`,
  // v2 -> v3: session ids and user ids in byte order ("C"), whatever the database's collation,
  // so that the primary keys are ordered indexes for id prefix scans (scan, scanUsers): in a
  // linguistic collation 'a-b' sorts between 'aa' and 'ac', and a prefix's ids are not one range.
  // Equality is the same in every deterministic collation; the primary keys are rebuilt.
  (n) => `ALTER TABLE ${n.q}.lapse_sessions ALTER COLUMN id TYPE text COLLATE "C";
  ALTER TABLE ${n.q}.lapse_users ALTER COLUMN user_id TYPE text COLLATE "C";`,
  // v3 -> v4: group commit (backend.ts): the updates and the inserts that callers issue at the
  // same time go as one statement, one transaction, one WAL flush. Each item gets its own
  // answer: a row ({"r": …}) or its refusal ({"c": SQLSTATE, "m": message}); a refusal changes
  // nothing of its own and never fails the others.
  (n) => {
    const s = n.q;
    return `
  -- lapse_update's checks, in the same order, once per item; items come sorted by id (one lock order).
  -- A row another transaction holds is skipped, not waited for (LXBSY): one held row must not
  -- hold up, or time out, the whole batch; that caller's update runs again on its own (backend.ts).
  CREATE FUNCTION ${s}.lapse_update_many(a_id text[], a_data text[], a_now bigint[], a_expected bigint[], a_fence bigint[])
  RETURNS json LANGUAGE plpgsql AS $fn$
  DECLARE r ${s}.lapse_sessions; out json[] := '{}'; i int;
  BEGIN
    FOR i IN 1 .. coalesce(cardinality(a_id), 0) LOOP
      SELECT * INTO r FROM ${s}.lapse_sessions WHERE id = a_id[i] FOR UPDATE SKIP LOCKED;
      IF r.id IS NULL AND EXISTS (SELECT 1 FROM ${s}.lapse_sessions WHERE id = a_id[i]) THEN
        out := out || json_build_object('c', 'LXBSY', 'm', format('session %s is busy', a_id[i]));
      ELSIF r.id IS NULL OR r.expires_at <= a_now[i] THEN
        out := out || json_build_object('c', 'LX404', 'm', format('no live session %s', a_id[i]));
      ELSIF r.lock_fence IS NOT NULL AND r.lock_expires_at > a_now[i] AND r.lock_fence IS DISTINCT FROM a_fence[i] THEN
        out := out || json_build_object('c', 'LX423', 'm', format('session %s is leased by %s until %s', r.id, r.lock_owner, r.lock_expires_at));
      ELSIF a_expected[i] IS NOT NULL AND a_expected[i] <> r.version THEN
        out := out || json_build_object('c', 'LX409', 'm', format('session %s is at version %s, not %s', a_id[i], r.version, a_expected[i]));
      ELSE
        UPDATE ${s}.lapse_sessions SET data = a_data[i], version = version + 1 WHERE id = a_id[i] RETURNING * INTO r;
        out := out || json_build_object('r', row_to_json(r));
      END IF;
    END LOOP;
    RETURN array_to_json(out);
  END;
  $fn$;

  -- lapse_insert once per item, each in a subtransaction of its own (an exception block) so that
  -- one refused insert (an id in use, a leased session it would replace) rolls back alone.
  CREATE FUNCTION ${s}.lapse_insert_many(a_id text[], a_secret text[], a_user text[], a_data text[], a_created bigint[],
      a_last bigint[], a_expires bigint[], a_abs bigint[], a_idle bigint[], a_count bigint[], a_version bigint[],
      a_lock_owner text[], a_lock_fence bigint[], a_lock_expires bigint[], a_ip text[], a_ua text[], a_now bigint[],
      a_max bigint[], a_max_user bigint[], a_replace boolean[], a_fence bigint[])
  RETURNS json LANGUAGE plpgsql AS $fn$
  DECLARE out json[] := '{}'; i int; k text;
  BEGIN
    -- The lock order, for the whole batch at once: the session rows it replaces in id order, then
    -- its users' rows in user_id order; each item then takes only rows it holds already, rows
    -- taken with SKIP LOCKED, and the counter shard, last. Items stay in call order. One key
    -- at a time: a lookup by primary key whatever plan is cached (an = ANY over the table can
    -- be cached as a scan while the table is small, and then scan it as it grows).
    FOR k IN SELECT DISTINCT x COLLATE "C" FROM unnest(a_id) AS x ORDER BY 1 LOOP
      PERFORM 1 FROM ${s}.lapse_sessions WHERE id = k FOR UPDATE;
    END LOOP;
    FOR k IN SELECT DISTINCT x COLLATE "C" FROM unnest(a_user) AS x WHERE x IS NOT NULL ORDER BY 1 LOOP
      PERFORM 1 FROM ${s}.lapse_users WHERE user_id = k FOR UPDATE;
    END LOOP;
    FOR i IN 1 .. coalesce(cardinality(a_id), 0) LOOP
      BEGIN
        out := out || json_build_object('r', ${s}.lapse_insert(a_id[i], a_secret[i], a_user[i], a_data[i], a_created[i],
          a_last[i], a_expires[i], a_abs[i], a_idle[i], a_count[i], a_version[i], a_lock_owner[i], a_lock_fence[i],
          a_lock_expires[i], a_ip[i], a_ua[i], a_now[i], a_max[i], a_max_user[i], a_replace[i], a_fence[i]));
      EXCEPTION WHEN SQLSTATE 'LX400' OR SQLSTATE 'LX423' OR unique_violation THEN
        out := out || json_build_object('c', SQLSTATE, 'm', SQLERRM);
      END;
    END LOOP;
    RETURN array_to_json(out);
  END;
  $fn$;

  -- A user's session rows in id order before the delete, the order a batch of updates takes
  -- them in, so "log out everywhere" and a batch never wait for each other in a cycle.
  CREATE OR REPLACE FUNCTION ${s}.lapse_remove_user(p_user text, p_now bigint, p_except text)
  RETURNS json LANGUAGE plpgsql AS $fn$
  DECLARE out json; n bigint;
  BEGIN
    PERFORM 1 FROM ${s}.lapse_sessions WHERE user_id = p_user AND id IS DISTINCT FROM p_except ORDER BY id FOR UPDATE;
    WITH d AS (DELETE FROM ${s}.lapse_sessions WHERE user_id = p_user AND id IS DISTINCT FROM p_except
      RETURNING id, user_id, expires_at, absolute_expires_at)
    SELECT coalesce(json_agg(${ended('d', 'revoked')}), '[]'::json), count(*) INTO out, n FROM d;
    PERFORM ${s}.lapse_count_down(array_fill(p_user, ARRAY[n::int]), n);
    RETURN out;
  END;
  $fn$;`;
  },
  // v4 -> v5: the batch of updates answers rows, not JSON: one row per item, in the order sent,
  // with the record's columns (the read order, RECORD_COLUMNS in statements.ts; data left out,
  // the caller sent it) or the refusal's SQLSTATE and message. Building a row_to_json per item and
  // appending it to a json[] was a third of the function's time; the busy check (an EXISTS) now
  // runs only for a row not found, and is no longer planned on every call. lapse_update_many
  // stays: processes of the version before that are running keep working until they restart.
  (n) => {
    const s = n.q;
    const columns = `secret_hash text, user_id text, data text, created_at bigint, last_accessed_at bigint,
      absolute_expires_at bigint, idle_timeout bigint, access_count bigint, version bigint, lock_owner text,
      lock_fence bigint, lock_expires_at bigint, ip text, user_agent text, id text, code text, message text`;
    return `
  -- The table's columns are written x.<name>: the result columns are variables of the same names.
  CREATE FUNCTION ${s}.lapse_update_rows(a_id text[], a_data text[], a_now bigint[], a_expected bigint[], a_fence bigint[])
  RETURNS TABLE (${columns}) LANGUAGE plpgsql AS $fn$
  DECLARE r ${s}.lapse_sessions; i int;
  BEGIN
    FOR i IN 1 .. coalesce(cardinality(a_id), 0) LOOP
      SELECT * INTO r FROM ${s}.lapse_sessions x WHERE x.id = a_id[i] FOR UPDATE SKIP LOCKED;
      id := a_id[i];
      code := NULL;
      IF r.id IS NULL THEN
        IF EXISTS (SELECT 1 FROM ${s}.lapse_sessions x WHERE x.id = a_id[i]) THEN
          code := 'LXBSY'; message := format('session %s is busy', a_id[i]);
        ELSE
          code := 'LX404'; message := format('no live session %s', a_id[i]);
        END IF;
      ELSIF r.expires_at <= a_now[i] THEN
        code := 'LX404'; message := format('no live session %s', a_id[i]);
      ELSIF r.lock_fence IS NOT NULL AND r.lock_expires_at > a_now[i] AND r.lock_fence IS DISTINCT FROM a_fence[i] THEN
        code := 'LX423'; message := format('session %s is leased by %s until %s', r.id, r.lock_owner, r.lock_expires_at);
      ELSIF a_expected[i] IS NOT NULL AND a_expected[i] <> r.version THEN
        code := 'LX409'; message := format('session %s is at version %s, not %s', a_id[i], r.version, a_expected[i]);
      END IF;
      IF code IS NULL THEN
        message := NULL;
        UPDATE ${s}.lapse_sessions x SET data = a_data[i], version = x.version + 1 WHERE x.id = a_id[i]
          RETURNING x.secret_hash, x.user_id, x.created_at, x.last_accessed_at, x.absolute_expires_at, x.idle_timeout,
            x.access_count, x.version, x.lock_owner, x.lock_fence, x.lock_expires_at, x.ip, x.user_agent
          INTO secret_hash, user_id, created_at, last_accessed_at, absolute_expires_at, idle_timeout,
            access_count, version, lock_owner, lock_fence, lock_expires_at, ip, user_agent;
      ELSE
        secret_hash := NULL; user_id := NULL; created_at := NULL; last_accessed_at := NULL; absolute_expires_at := NULL;
        idle_timeout := NULL; access_count := NULL; version := NULL; lock_owner := NULL; lock_fence := NULL;
        lock_expires_at := NULL; ip := NULL; user_agent := NULL;
      END IF;
      RETURN NEXT;
    END LOOP;
  END;
  $fn$;`;
  },
  // v5 -> v6: the batch of inserts answers rows, and a batch of plain creates (new ids, no
  // global cap, no user reaching its cap) is three set-wise statements: the rows, the users'
  // counts, this connection's counter shard once. Per item before, that was a subtransaction, a
  // call of lapse_insert and of lapse_count_up, two JSON objects and a write of the same counter
  // row: 174 µs of the database's time per item in a batch of 16, 77 µs now (docs/decisions.md).
  // Anything else (an id in use, a global cap, a user at its cap, an id twice in one batch, an
  // id another transaction inserted first) takes lapse_insert per item, as lapse_insert_many
  // did. lapse_insert_many stays for running processes of the version before.
  (n) => {
    const s = n.q;
    return `
  -- One row per item, in the order sent: r, lapse_insert's answer (null when the item went in
  -- as sent, with nothing ended), or code and message, its refusal.
  CREATE FUNCTION ${s}.lapse_insert_rows(a_id text[], a_secret text[], a_user text[], a_data text[], a_created bigint[],
      a_last bigint[], a_expires bigint[], a_abs bigint[], a_idle bigint[], a_count bigint[], a_version bigint[],
      a_lock_owner text[], a_lock_fence bigint[], a_lock_expires bigint[], a_ip text[], a_ua text[], a_now bigint[],
      a_max bigint[], a_max_user bigint[], a_replace boolean[], a_fence bigint[])
  RETURNS TABLE (r json, code text, message text) LANGUAGE plpgsql AS $fn$
  DECLARE i int; k text; n int := coalesce(cardinality(a_id), 0); plain boolean; ids int := 0;
    done text[] := '{}'; who text[]; added bigint := 0; fresh bigint := 0; mine bigint; cap bigint; have bigint;
    held boolean := false;
  BEGIN
    plain := NOT EXISTS (SELECT 1 FROM unnest(a_max) AS g WHERE g IS NOT NULL);
    -- The lock order of lapse_insert_many: the session rows in id order (one key at a time, see
    -- there), then the users' rows in user_id order, then the counter shard, last.
    FOR k IN SELECT DISTINCT x COLLATE "C" FROM unnest(a_id) AS x ORDER BY 1 LOOP
      PERFORM 1 FROM ${s}.lapse_sessions x WHERE x.id = k FOR UPDATE;
      IF FOUND THEN plain := false; END IF;
      ids := ids + 1;
    END LOOP;
    IF ids < n THEN plain := false; END IF;
    -- A per-user cap keeps the batch plain when no item of it would evict: lapse_cap_user evicts
    -- for an item while the user's count (sessions stored, as lapse_users holds it, plus the
    -- items before it) reaches its cap; so each user's count plus its items must stay within
    -- the smallest cap its items carry.
    IF plain AND EXISTS (SELECT 1 FROM unnest(a_max_user) AS u WHERE u IS NOT NULL) THEN
      held := true;
      FOR k, mine, cap IN SELECT v.x COLLATE "C", count(*), min(v.m) FROM unnest(a_user, a_max_user) AS v(x, m)
          WHERE v.x IS NOT NULL GROUP BY 1 ORDER BY 1 LOOP
        SELECT x.sessions INTO have FROM ${s}.lapse_users x WHERE x.user_id = k FOR UPDATE;
        IF cap IS NOT NULL AND coalesce(have, 0) + mine > cap THEN plain := false; END IF;
      END LOOP;
    END IF;
    IF plain THEN
      -- An id that another transaction inserted meanwhile is skipped here, and refused below.
      WITH ins AS (
        INSERT INTO ${s}.lapse_sessions AS x (id, secret_hash, user_id, data, created_at, last_accessed_at, expires_at,
            absolute_expires_at, idle_timeout, access_count, version, recency, lock_owner, lock_fence, lock_expires_at,
            ip, user_agent)
          SELECT v.id, v.h, v.u, v.d, v.c, v.l, v.e, v.a, v.i, v.n, v.v, nextval('${s}.lapse_recency'), v.lo, v.lf, v.le,
            v.ip, v.ua
          FROM unnest(a_id, a_secret, a_user, a_data, a_created, a_last, a_expires, a_abs, a_idle, a_count, a_version,
            a_lock_owner, a_lock_fence, a_lock_expires, a_ip, a_ua) AS v(id, h, u, d, c, l, e, a, i, n, v, lo, lf, le, ip, ua)
        ON CONFLICT (id) DO NOTHING
        RETURNING x.id, x.user_id)
      SELECT coalesce(array_agg(ins.id), '{}'), array_agg(ins.user_id) FILTER (WHERE ins.user_id IS NOT NULL), count(*)
        INTO done, who, added FROM ins;
      IF who IS NOT NULL THEN
        WITH up AS (
          INSERT INTO ${s}.lapse_users AS x (user_id, sessions)
            SELECT g.u COLLATE "C", count(*) FROM unnest(who) AS g(u) GROUP BY 1 ORDER BY 1
          ON CONFLICT (user_id) DO UPDATE SET sessions = x.sessions + excluded.sessions
          RETURNING (xmax = 0) AS f)
        SELECT count(*) FILTER (WHERE up.f) INTO fresh FROM up;
      END IF;
      IF added > 0 THEN
        UPDATE ${s}.lapse_counters x SET sessions = x.sessions + added, users = x.users + fresh WHERE x.shard = ${SHARD};
      END IF;
    ELSIF NOT held THEN
      FOR k IN SELECT DISTINCT x COLLATE "C" FROM unnest(a_user) AS x WHERE x IS NOT NULL ORDER BY 1 LOOP
        PERFORM 1 FROM ${s}.lapse_users x WHERE x.user_id = k FOR UPDATE;
      END LOOP;
    END IF;
    FOR i IN 1 .. n LOOP
      r := NULL; code := NULL; message := NULL;
      IF NOT (a_id[i] = ANY (done)) THEN
        BEGIN
          r := ${s}.lapse_insert(a_id[i], a_secret[i], a_user[i], a_data[i], a_created[i], a_last[i], a_expires[i], a_abs[i],
            a_idle[i], a_count[i], a_version[i], a_lock_owner[i], a_lock_fence[i], a_lock_expires[i], a_ip[i], a_ua[i],
            a_now[i], a_max[i], a_max_user[i], a_replace[i], a_fence[i]);
        EXCEPTION WHEN SQLSTATE 'LX400' OR SQLSTATE 'LX423' OR unique_violation THEN
          code := SQLSTATE; message := SQLERRM;
        END;
      END IF;
      RETURN NEXT;
    END LOOP;
  END;
  $fn$;

  -- Every lookup inside the functions by index, whatever the table's size when a connection
  -- first planned it. A function's statements are planned once per connection and the plan
  -- kept: one planned after an ANALYZE of a near-empty table (autovacuum's, at 50 rows) is a
  -- sequential scan, the cheapest there, and stayed one as the table grew, until the next
  -- ANALYZE (a login batch at 1.4 ms per id over 10k rows, bench/postgres.ts). With sequential
  -- scans off, a statement that has an index takes it; one that has none (a sum over the 64
  -- counter rows, the delete of clear) still scans. A function added later must say the same.
  DO $do$
  DECLARE f regprocedure;
  BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = '${s.replaceAll("'", "''")}'::regnamespace AND p.proname LIKE 'lapse\\_%' LOOP
      EXECUTE format('ALTER FUNCTION %s SET enable_seqscan = off', f);
    END LOOP;
  END;
  $do$;`;
  },
];
