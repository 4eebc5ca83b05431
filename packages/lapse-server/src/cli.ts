#!/usr/bin/env node
/** The `lapse` binary: `lapse serve`, and tools that work on the data folder. */
import { isBrokenPipe, runCli } from './cli/program.js';

// `lapse … | head`: once the reader is gone, writes fail with EPIPE on the stream, outside any
// command's await. Stop quietly, as a command line tool does when its reader stops.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (isBrokenPipe(err)) process.exit(0);
    throw err;
  });
}

// Backends keep their background handles unref'd (a library must not hold a process open),
// so while a command awaits one (closing a store waits for the SQLite checkpoint worker) the
// loop could look empty and Node would quit mid-command. This handle holds it until the
// command is done; `serve` then lives on its listening server.
const hold = setInterval(() => {}, 60_000);
const code = await runCli(process.argv.slice(2));
clearInterval(hold);
if (code !== 0) process.exit(code);
