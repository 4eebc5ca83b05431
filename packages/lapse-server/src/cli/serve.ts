import { resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { createServer } from '../server/app.js';
import { describeBackend } from '../server/backend.js';
import { loadConfig, SETTINGS } from '../server/config.js';
import { onShutdown } from '../server/shutdown.js';
import type { CliIO } from './io.js';

/** `lapse serve`: every setting is a flag, a LAPSE_* variable and a config-file key. */
export function serveCommand(program: Command, io: CliIO): void {
  const cmd = program.command('serve').description('run the HTTP service (and print the admin key on first start)');
  for (const s of SETTINGS) {
    if (!s.flag) continue;
    cmd.option(s.flag, `${s.help} [env ${s.env}]${s.def !== undefined ? ` (default: ${s.def || 'none'})` : ''}`);
  }
  cmd
    .option('--config <file>', 'JSON file with any of these settings by name, e.g. {"port": 8080} [env LAPSE_CONFIG]')
    .addHelpText(
      'after',
      [
        '',
        'The admin key comes from LAPSE_ADMIN_KEY (never a flag); without it, one is made on the',
        'first start, printed once, and kept hashed in <data-dir>/keys.json.',
        'Precedence: flags, then LAPSE_* variables, then the config file, then defaults.',
        '',
        'Example:',
        '  $ lapse serve',
        '  $ LAPSE_PORT=8080 lapse serve --backend memory',
        '  $ lapse serve --backend redis://127.0.0.1:6380 --host 0.0.0.0 --trust-proxy on',
      ].join('\n'),
    )
    .action(async (flags: Record<string, unknown>) => {
      const config = loadConfig({ flags, env: io.env });
      const app = await createServer(config);
      onShutdown(() => app.close(), { log: (m) => io.stderr.write(`${m}\n`) });
      await app.listen({ host: config.host, port: config.port });
      const { port } = app.server.address() as AddressInfo;
      const host = config.host.includes(':') ? `[${config.host}]` : config.host;
      const lines = [
        `Lapse is listening on http://${host}:${port}`,
        `  backend  ${describeBackend(config.backend)}`,
        `  data     ${resolve(config.dataDir)}`,
      ];
      const key = app.lapse.generatedAdminKey;
      if (key) {
        // Printed here, on stdout, once; never given to the logger.
        lines.push(
          '',
          `Admin key, shown once (kept hashed in ${app.lapse.keys.path}):`,
          '',
          `  ${key}`,
          '',
          `Try: curl -H "Authorization: Bearer ${key}" http://${host}:${port}/health`,
        );
      }
      io.stdout.write(`${lines.join('\n')}\n`);
    });
}
