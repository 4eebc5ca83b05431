import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { LapseError } from 'lapse/internal';
import { silentLogger } from 'lapse/internal';
import { openBackend, parseBackendUrl } from '../server/backend.js';
import { loadConfig, type ServerConfig } from '../server/config.js';
import { createStore, type SessionStore } from 'lapse/internal';
import type { CliIO } from './io.js';

/** The options every management command takes to find the data. */
export function dataOptions(cmd: Command): Command {
  return cmd
    .option('--backend <url>', "'sqlite:<path>' or 'redis://host:port' [env LAPSE_BACKEND] (default: sqlite:<data-dir>/lapse.db)")
    .option('--data-dir <dir>', 'data folder [env LAPSE_DATA_DIR] (default: ./data)')
    .option('--redis-prefix <prefix>', 'key prefix on Redis [env LAPSE_REDIS_PREFIX]')
    .option('--config <file>', 'JSON config file [env LAPSE_CONFIG]');
}

/** The configuration a management command runs with: flags, then LAPSE_* variables, then the file. */
export function configOf(flags: Record<string, unknown>, io: CliIO): ServerConfig {
  const picked: Record<string, unknown> = {};
  for (const k of ['backend', 'dataDir', 'redisPrefix', 'config']) if (flags[k] !== undefined) picked[k] = flags[k];
  return loadConfig({ flags: picked, env: io.env });
}

/**
 * Opens the store a management command works on, straight on the backend (like sqlite3 on
 * the file): no background jobs, no log noise. The memory backend lives inside `lapse serve`
 * and cannot be reached from here.
 */
export async function openStore(
  config: ServerConfig,
  opts: { create?: boolean; sweepInterval?: string } = {},
): Promise<SessionStore> {
  const target = parseBackendUrl(config.backend);
  if (target.kind === 'memory') {
    throw new LapseError('LAPSE_INVALID_OPTION', "the memory backend lives inside 'lapse serve'; management commands need --backend sqlite:<path> or redis://…");
  }
  if (target.kind === 'sqlite' && !opts.create && !existsSync(target.path)) {
    throw new LapseError('LAPSE_INVALID_OPTION', `no database at ${target.path} (start 'lapse serve' first, or pass --backend / --data-dir)`);
  }
  const backend = await openBackend(config.backend, { redisPrefix: config.redisPrefix, logger: silentLogger });
  return createStore({
    backend,
    logger: silentLogger,
    idleTimeout: config.idleTimeout,
    absoluteTimeout: config.absoluteTimeout,
    sweepInterval: opts.sweepInterval ?? false,
  });
}

/** Runs `fn` with an open store and always closes it. */
export async function withStore<T>(
  config: ServerConfig,
  fn: (store: SessionStore) => Promise<T>,
  opts: { create?: boolean; sweepInterval?: string } = {},
): Promise<T> {
  const store = await openStore(config, opts);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
