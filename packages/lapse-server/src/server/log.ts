import pino, { type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { keyOf } from './auth.js';
import type { LogLevel } from './config.js';
import type { ServerMetrics } from './metrics.js';
import type { OutageLog } from './outage.js';

/** Paths pino blanks out wherever they appear: keys and tokens never reach a log line. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'authorization',
  'token',
  '*.token',
  'body',
  '*.body',
  'key',
  '*.key',
  'adminKey',
  '*.adminKey',
];

const TOKEN_RE = /[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}/g;
const KEY_RE = /lapse_(?:admin|app)_[A-Za-z0-9_-]+/g;
const SAFE_QUERY = new Set(['cursor', 'limit', 'except', 'fence']);

/** A URL fit for a log: token- and key-shaped parts blanked, unknown query values dropped. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  const path = (q < 0 ? url : url.slice(0, q)).replace(TOKEN_RE, '[token]').replace(KEY_RE, '[key]');
  if (q < 0) return path;
  const params = new URLSearchParams(url.slice(q + 1));
  const kept: string[] = [];
  for (const [k, v] of params) {
    const safe = SAFE_QUERY.has(k) && !TOKEN_RE.test(v) && !KEY_RE.test(v);
    TOKEN_RE.lastIndex = 0;
    KEY_RE.lastIndex = 0;
    kept.push(`${encodeURIComponent(k)}=${safe ? encodeURIComponent(v) : '[redacted]'}`);
  }
  return `${path}?${kept.join('&')}`;
}

/** The service's pino logger: JSON lines, redaction on, stderr (sync, so the last lines before an exit are kept) unless a stream is given. */
export function createLogger(level: LogLevel, stream?: DestinationStream): PinoLogger {
  const options = { name: 'lapse', level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return pino(options, stream ?? pino.destination({ dest: 2, sync: true }));
}

/**
 * One access-log line per answered request, and the request counter. The line is written by a
 * child of the service's logger with redaction off: every field is built here, and none can
 * hold a token or a key (the URL goes through redactUrl, the key is named, never shown), so the
 * redaction pass found nothing to blank and cost more than half of the line (5.1 µs a line with
 * it, 2.35 µs without, pino to /dev/null here).
 */
export function installAccessLog(app: FastifyInstance, opts: { accessLog: boolean; metrics: ServerMetrics; outage?: OutageLog }): void {
  const access = opts.accessLog ? app.log.child({}, { redact: { paths: [] } }) : null;
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.is404 ? 'unknown' : (request.routeOptions.url ?? 'unknown');
    opts.metrics.observeRequest(request.method, route, reply.statusCode);
    opts.outage?.answered(route, reply.statusCode);
    if (access === null) return done();
    access.info(
      {
        reqId: request.id,
        method: request.method,
        url: redactUrl(request.url),
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 100) / 100,
        ip: request.ip,
        apiKey: keyOf(request)?.name,
      },
      'request',
    );
    done();
  });
}
