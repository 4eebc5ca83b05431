import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { LapseError } from 'lapse/internal';
import { type CliIO, processIO } from './io.js';
import { jobsCommand } from './jobs.js';
import { keysCommand } from './keys.js';
import { serveCommand } from './serve.js';
import { sessionsCommand, usersCommand } from './sessions.js';
import { transferCommands } from './transfer.js';

/** This package's version, from its package.json (two folders up from src/cli and from dist/cli). */
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** True for the error a write gets once the reader of a pipe has gone (`lapse … | head`). */
export function isBrokenPipe(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'EPIPE';
}

/** The `lapse` command line, writing to `io`. */
export function buildProgram(io: CliIO): Command {
  const program = new Command('lapse')
    .description('Lapse: session lifecycle service and tools')
    .version(VERSION, '-V, --version', 'print the version')
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .addHelpText('after', '\nExample:\n  $ lapse serve\n  $ lapse keys create --name web\n  $ lapse sessions list --json');
  serveCommand(program, io);
  sessionsCommand(program, io);
  usersCommand(program, io);
  jobsCommand(program, io);
  keysCommand(program, io);
  transferCommands(program, io);
  // Throw instead of exiting, in every subcommand too, so runCli decides the exit code.
  const override = (c: Command): void => {
    c.exitOverride();
    c.configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) });
    for (const sub of c.commands) override(sub);
  };
  override(program);
  return program;
}

/**
 * Runs the CLI with `argv` (without node and the script) and returns the exit code: 0 done,
 * 1 failed, 2 bad usage or configuration. `serve` returns once listening; the process stays up.
 */
export async function runCli(argv: string[], io: CliIO = processIO()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    // The reader stopped reading (`| head`): what it did not want is not an error to report.
    if (isBrokenPipe(err)) return 0;
    if (err instanceof CommanderError) {
      const looksLikeId = err.code === 'commander.unknownOption' && /'-[A-Za-z0-9_-]{15,}'/.test(err.message);
      // Session ids are base64url: one in 64 starts with '-', which reads as an option.
      if (looksLikeId) io.stderr.write("lapse: an id that starts with '-' goes after '--', e.g. lapse sessions revoke -- -AbC…\n");
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof LapseError) {
      io.stderr.write(`lapse: ${err.message} (${err.code})\n`);
      return err.code === 'LAPSE_INVALID_OPTION' || err.code === 'LAPSE_INVALID_INPUT' ? 2 : 1;
    }
    io.stderr.write(`lapse: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
