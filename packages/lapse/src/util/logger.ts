import { writeSync } from 'node:fs';
import { hostname } from 'node:os';

/** One log method: a structured object first, an optional message second (pino's order). */
export type LogFn = (obj: object, msg?: string) => void;

/**
 * The logger Lapse writes to: any pino logger fits, and so does a small object with these
 * four methods (a test can pass one that records the calls).
 */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child?(bindings: Record<string, unknown>): Logger;
}

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;
type Level = keyof typeof LEVELS;

/** An Error as pino's standard serializer writes it: type, message, stack (and a code if any). */
function serialize(value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  const code = (value as { code?: unknown }).code;
  return {
    type: value.name,
    message: value.message,
    stack: value.stack,
    ...(code !== undefined ? { code } : {}),
  };
}

function jsonLogger(level: string, min: number, bindings: Record<string, unknown>): Logger & { level: string } {
  const at =
    (lvl: Level): LogFn =>
    (obj, msg) => {
      if (LEVELS[lvl] < min) return;
      const fields: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(obj)) fields[k] = serialize(v);
      const line = {
        level: LEVELS[lvl],
        time: Date.now(),
        ...bindings,
        ...fields,
        ...(msg !== undefined ? { msg } : {}),
      };
      // Synchronous, so the last lines before a crash or exit are not lost in a buffer.
      writeSync(2, `${JSON.stringify(line)}\n`);
    };
  return {
    level,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (b) => jsonLogger(level, min, { ...bindings, ...b }),
  };
}

/**
 * A JSON-lines logger on stderr at `LAPSE_LOG_LEVEL` (default 'warn'), in pino's line format
 * (level number, time, pid, hostname, name, msg): a library stays quiet unless something is
 * wrong; the service passes its own pino logger at 'info'. The library does not depend on pino.
 */
export function defaultLogger(): Logger & { level: string } {
  const name = process.env.LAPSE_LOG_LEVEL ?? 'warn';
  const min = name === 'silent' ? Number.POSITIVE_INFINITY : (LEVELS[name as Level] ?? (name === 'trace' ? 10 : name === 'fatal' ? 60 : LEVELS.warn));
  return jsonLogger(name, min, {
    pid: process.pid,
    hostname: hostname(),
    name: 'lapse',
  });
}

const noop: LogFn = () => {};

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
};
