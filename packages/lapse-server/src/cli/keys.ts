import type { Command } from 'commander';
import { LapseError } from 'lapse/internal';
import { KeyRing } from '../server/keys.js';
import { type CliIO, iso, json, table } from './io.js';
import { configOf } from './store.js';

const dirOption = (cmd: Command) =>
  cmd.option('--data-dir <dir>', 'data folder holding keys.json [env LAPSE_DATA_DIR] (default: ./data)').option('--config <file>', 'JSON config file [env LAPSE_CONFIG]');

function ring(opts: Record<string, unknown>, io: CliIO): KeyRing {
  return new KeyRing(configOf(opts, io).dataDir);
}

/** `lapse keys create|list|revoke`: API keys, kept hashed in <dataDir>/keys.json. */
export function keysCommand(program: Command, io: CliIO): void {
  const keys = program.command('keys').description('API keys (stored hashed in <data-dir>/keys.json)');

  dirOption(keys.command('create'))
    .description('make an app key (or --admin key); it is printed once and never stored')
    .requiredOption('--name <name>', 'a name for the key, e.g. the app using it')
    .option('--admin', 'make an admin key instead of an app key')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ lapse keys create --name web\n  $ LAPSE_KEY=$(lapse keys create --name worker --json | jq -r .key)')
    .action((opts: { name: string; admin?: boolean; json?: boolean }) => {
      const { key, record } = ring(opts, io).create(opts.name, opts.admin ? 'admin' : 'app');
      if (opts.json) return json(io, { key, id: record.id, name: record.name, kind: record.kind });
      io.stdout.write(`${record.kind} key '${record.name}' (${record.id}), shown once; keep it secret:\n\n  ${key}\n\n`);
    });

  dirOption(keys.command('list'))
    .description('list keys (names and ids; keys themselves are never stored)')
    .option('--all', 'include revoked keys')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ lapse keys list --all')
    .action((opts: { all?: boolean; json?: boolean }) => {
      const list = ring(opts, io)
        .list()
        .filter((k) => opts.all || k.revokedAt === null)
        .map(({ hash: _hash, ...k }) => k);
      if (opts.json) return json(io, list);
      table(
        io,
        list.map((k) => ({ id: k.id, name: k.name, kind: k.kind, created: iso(k.createdAt), revoked: k.revokedAt === null ? '-' : iso(k.revokedAt) })),
        ['id', 'name', 'kind', 'created', 'revoked'],
      );
    });

  dirOption(keys.command('revoke').argument('<idOrName>', 'key id (key_…) or name'))
    .description('revoke a key; a running service stops accepting it within a second')
    .addHelpText('after', '\nExample:\n  $ lapse keys revoke web')
    .action((idOrName: string, opts: Record<string, unknown>) => {
      if (!ring(opts, io).revoke(idOrName)) throw new LapseError('LAPSE_NOT_FOUND', `no active key '${idOrName}'`);
      io.stdout.write(`revoked key ${idOrName}\n`);
    });
}
