import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { parsePositiveDuration } from 'lapse/internal';
import { LapseError } from 'lapse/internal';
import { userField } from 'lapse/internal';
import { progress } from '../progress.js';
import { type CliIO, json } from '../io.js';
import { configOf, withStore } from '../store.js';
import { betterSqliteSource } from './better-sqlite3-session-store.js';
import { connectPgSimpleSource } from './connect-pg-simple.js';
import { connectRedisSource } from './connect-redis.js';
import { migrate } from './migrate.js';
import type { PeerSource } from './source.js';

const SOURCES = ['connect-redis', 'better-sqlite3-session-store', 'connect-pg-simple'] as const;

export interface SourceImportFlags {
  from?: string;
  prefix?: string;
  table?: string;
  schema?: string;
  userField?: string;
  checkpoint?: string;
  json?: boolean;
}

/** The options `lapse import --from <store>` adds to the import command. */
export function importSourceOptions(cmd: Command): Command {
  return cmd
    .option('--from <store>', `read a live express-session store instead of a file: ${SOURCES.join(', ')}`)
    .option('--prefix <prefix>', 'with --from connect-redis: the key prefix (default sess:)')
    .option('--table <name>', 'the table: better-sqlite3-session-store (default sessions), connect-pg-simple (default session)')
    .option('--schema <name>', 'with --from connect-pg-simple: its schemaName (default: the search_path)')
    .option('--user-field <path>', 'with --from: the session field holding the user id, e.g. passport.user')
    .option('--checkpoint <file>', 'with --from: where progress is kept to resume (default: <data-dir>/import-<store>.checkpoint)')
    .addHelpText(
      'after',
      '\n  $ lapse import --from connect-redis redis://127.0.0.1:6379 --prefix sess: --user-field passport.user\n  $ lapse import --from better-sqlite3-session-store ./sessions.db\n  $ lapse import --from connect-pg-simple postgres://127.0.0.1/app',
    );
}

function openSource(from: string, location: string, f: SourceImportFlags): PeerSource {
  if (from === 'connect-redis') return connectRedisSource(location, f.prefix ?? 'sess:');
  if (from === 'better-sqlite3-session-store') return betterSqliteSource(location, f.table ?? 'sessions');
  if (from === 'connect-pg-simple') return connectPgSimpleSource(location, f.table ?? 'session', f.schema);
  throw new LapseError('LAPSE_INVALID_OPTION', `--from takes one of ${SOURCES.join(', ')} (got '${from}')`);
}

/**
 * `lapse import --from <store> <location>`: copies a live express-session store into Lapse
 * under the same ids, with a progress bar; Ctrl-C stops after the current page and a rerun
 * resumes from the checkpoint.
 */
export async function runSourceImport(location: string, flags: SourceImportFlags & Record<string, unknown>, io: CliIO): Promise<void> {
  const from = flags.from as string;
  const config = configOf(flags, io);
  const source = openSource(from, location, flags);
  const checkpoint = flags.checkpoint ?? join(config.dataDir, `import-${from}.checkpoint`);
  mkdirSync(dirname(checkpoint), { recursive: true, mode: 0o700 });
  const bar = progress({ label: `import ${from}`, stream: io.stderr, unit: 'sessions' });
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  process.once('SIGINT', onSigint);
  try {
    const { counts, done } = await withStore(
      config,
      (store) =>
        migrate(source, store, {
          idleTimeout: parsePositiveDuration(config.idleTimeout, 'idleTimeout'),
          absoluteTimeout: parsePositiveDuration(config.absoluteTimeout, 'absoluteTimeout'),
          userId: flags.userField ? userField(flags.userField) : undefined,
          checkpoint,
          signal: stop.signal,
          onProgress: (n, total) => bar.update(n, total),
        }),
      { create: true },
    );
    bar.finish();
    if (flags.json) json(io, { ...counts, done });
    else {
      io.stdout.write(
        `imported ${counts.imported}, kept ${counts.existing} already in Lapse, skipped ${counts.expired} expired and ${counts.invalid} invalid (${counts.scanned} read)\n`,
      );
    }
    if (!done) throw new Error(`import interrupted; rerun the same command to resume from ${checkpoint}`);
  } finally {
    process.removeListener('SIGINT', onSigint);
    bar.finish();
    await source.close();
  }
}
