import type { Pool, PoolClient } from 'pg';
import { LapseError } from '../../core/errors.js';
import type { SchemaNames } from './names.js';
import { APPLICATION, MIGRATIONS, READABLE_BY, SCHEMA_VERSION, TABLES } from './schema.js';

/**
 * Creates or upgrades Lapse's tables in its schema, in one transaction under an advisory lock,
 * so two processes starting at once never both migrate (the second finds the work done).
 * Refuses a schema holding tables by Lapse's names that are not Lapse's, or a newer version
 * that does not say this one may use it, with LAPSE_INVALID_OPTION; a refusal rolls back, so
 * nothing is changed.
 */
export async function migrate(pool: Pool, n: SchemaNames): Promise<void> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    try {
      await client.query(`SELECT pg_advisory_xact_lock(${n.migrateLock})`);
      const { version, schemaExists } = await inspect(client, n);
      if (version < SCHEMA_VERSION) {
        // Only when missing: CREATE SCHEMA IF NOT EXISTS needs the CREATE right even when it exists.
        if (!schemaExists) await client.query(`CREATE SCHEMA ${n.q}`);
        if (version === 0) {
          await client.query(`CREATE TABLE ${n.q}.lapse_schema (application text NOT NULL, version int NOT NULL);
            INSERT INTO ${n.q}.lapse_schema (application, version) VALUES ('${APPLICATION}', 0)`);
        }
        for (let v = version; v < SCHEMA_VERSION; v++) await client.query((MIGRATIONS[v] as (x: SchemaNames) => string)(n));
        await client.query(`ALTER TABLE ${n.q}.lapse_schema ADD COLUMN IF NOT EXISTS readable_by int;
          UPDATE ${n.q}.lapse_schema SET version = ${SCHEMA_VERSION}, readable_by = ${READABLE_BY}`);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = e instanceof Error ? e : new Error(String(e));
      });
      throw err;
    }
  } catch (err) {
    broken ??= err instanceof LapseError ? undefined : (err as Error);
    throw err;
  } finally {
    // A connection that failed mid-transaction is dropped rather than handed to the next caller.
    client.release(broken);
  }
}

/** The version of Lapse's tables in the schema (0: none yet), or a refusal. */
async function inspect(client: PoolClient, n: SchemaNames): Promise<{ version: number; schemaExists: boolean }> {
  const found = await client.query<{ relname: string; nsp: boolean }>(
    `SELECT c.relname, true AS nsp FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
       WHERE ns.nspname = $1 AND c.relname = ANY ($2)
     UNION ALL SELECT '' AS relname, true FROM pg_namespace WHERE nspname = $1`,
    [n.schema, TABLES],
  );
  const schemaExists = found.rows.some((r) => r.relname === '');
  const tables = found.rows.map((r) => r.relname).filter((t) => t !== '');
  if (!tables.includes('lapse_schema')) {
    if (tables.length > 0) throw refuse(n, `has tables ${tables.join(', ')} but no lapse_schema: they are not Lapse's`);
    return { version: 0, schemaExists };
  }
  let rows: { application: unknown; version: unknown; readable_by: unknown }[];
  try {
    // readable_by through the row's JSON: the column is missing in a schema no migration of this code has touched.
    rows = (await client.query(`SELECT application, version, (to_jsonb(s) ->> 'readable_by')::int AS readable_by FROM ${n.q}.lapse_schema s`)).rows;
  } catch (err) {
    throw refuse(n, `has a lapse_schema table Lapse cannot read (${(err as Error).message})`, err);
  }
  const row = rows[0];
  if (rows.length !== 1 || row?.application !== APPLICATION || typeof row.version !== 'number') {
    throw refuse(n, 'has a lapse_schema table that is not Lapse\'s');
  }
  // A newer schema that keeps this version's statements working (see READABLE_BY) is used as it is, never downgraded.
  if (row.version > SCHEMA_VERSION && !(typeof row.readable_by === 'number' && row.readable_by <= SCHEMA_VERSION)) {
    throw refuse(n, `has schema version ${row.version}, newer than this Lapse understands (${SCHEMA_VERSION}); upgrade Lapse`);
  }
  return { version: row.version, schemaExists };
}

function refuse(n: SchemaNames, why: string, cause?: unknown): LapseError {
  return new LapseError('LAPSE_INVALID_OPTION', `postgres: the schema ${n.q} ${why}`, cause === undefined ? undefined : { cause });
}
