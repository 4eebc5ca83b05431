import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, LapseError, type LapseErrorCode } from 'lapse/internal';
import type { OutageLog } from './outage.js';

/** The error body of every failing route. */
export interface ErrorBody {
  error: { code: LapseErrorCode; message: string };
}

/** Turns anything thrown in a route into a status and the `{ error: { code, message } }` body. */
export function httpError(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof LapseError) {
    // A configuration error met while serving is the service's fault, not the caller's.
    const status = err.code === 'LAPSE_INVALID_OPTION' ? 500 : err.status;
    return { status, body: { error: { code: err.code, message: err.message } } };
  }
  const e = err as Partial<FastifyError> & { status?: number };
  const status = e.statusCode ?? e.status ?? 500;
  if (e.validation) return body(400, 'LAPSE_INVALID_INPUT', e.message ?? 'invalid input');
  if (status === 413 || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return body(413, 'LAPSE_PAYLOAD_TOO_LARGE', 'the request body is larger than allowed');
  // JSON.parse messages quote the input, and the input may be a token: never echo it.
  if (err instanceof SyntaxError) return body(400, 'LAPSE_INVALID_INPUT', 'the request body is not valid JSON');
  if (status === 404) return body(404, 'LAPSE_NOT_FOUND', 'no such route');
  if (status >= 400 && status < 500) return body(status, 'LAPSE_INVALID_INPUT', safeMessage(e));
  // Not a LapseError and not the caller's input: the service could not do its work.
  return body(500, 'LAPSE_INTERNAL', ERROR_CODES.LAPSE_INTERNAL.message);
}

function body(status: number, code: LapseErrorCode, message: string) {
  return { status, body: { error: { code, message } } };
}

/** Fastify's own 4xx messages name the problem without quoting input; keep them short anyway. */
function safeMessage(e: Partial<FastifyError>): string {
  return typeof e.message === 'string' ? e.message.slice(0, 200) : 'invalid request';
}

/** Shorter values cannot be a token or a key (a secret alone is 43 characters). */
const SECRET_MIN = 16;

/**
 * The message with every path and query value of the request blanked. Ids appear in the
 * library's messages ("no live session <id>"), and what a caller put in the URL where an id
 * goes may be a token: an answer must not hand it back (nor the log line written from it).
 */
export function withoutUrlValues(message: string, request: FastifyRequest): string {
  let out = message;
  for (const source of [request.params, request.query]) {
    if (typeof source !== 'object' || source === null) continue;
    for (const [name, value] of Object.entries(source as Record<string, unknown>)) {
      if (typeof value !== 'string' || value.length < SECRET_MIN) continue;
      // JSON.stringify'd in some messages, so its escaped form is blanked too.
      for (const form of [value, JSON.stringify(value).slice(1, -1)]) out = out.split(form).join(`<${name}>`);
    }
  }
  return out;
}

/** Installs the error and not-found handlers that answer with the Lapse error body; backend outages go to `outage`. */
export function installErrorHandlers(app: FastifyInstance, outage?: OutageLog): void {
  app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body: out } = httpError(err);
    out.error.message = withoutUrlValues(out.error.message, request);
    const unavailable = out.error.code === 'LAPSE_BACKEND_UNAVAILABLE' || out.error.code === 'LAPSE_CLOSED';
    // A backend outage is logged once, by the outage log, not once per request.
    if (unavailable && outage) outage.failedRequest(out.error.code, out.error.message);
    else if (status >= 500) request.log.error({ reqId: request.id, err, code: out.error.code }, 'request failed');
    else request.log.debug({ reqId: request.id, code: out.error.code, status }, 'request refused');
    reply.code(status);
    if (status === 503) reply.header('retry-after', '1');
    return reply.send(out);
  });
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    // The URL is not echoed: a client that put a token in it should not get it back in a body.
    reply.code(404).send({ error: { code: 'LAPSE_NOT_FOUND', message: `no route for ${request.method} here` } });
  });
}
