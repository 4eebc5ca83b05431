import pino from 'pino';

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

/**
 * A pino logger on stderr at `LAPSE_LOG_LEVEL` (default 'warn'): a library stays quiet
 * unless something is wrong; the service passes its own logger at 'info'.
 */
export function defaultLogger(): Logger {
  const level = process.env.LAPSE_LOG_LEVEL ?? 'warn';
  // sync so the last lines before a crash or exit are not lost in a buffer.
  return pino({ name: 'lapse', level }, pino.destination({ dest: 2, sync: true }));
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
