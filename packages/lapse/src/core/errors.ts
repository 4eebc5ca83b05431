/**
 * The one error catalogue of Lapse. Every error thrown by Lapse is a `LapseError`
 * whose `code` is one of these keys; docs/errors.md lists the same codes (a test
 * fails when the two disagree).
 */
export const ERROR_CODES = {
  LAPSE_INVALID_OPTION: { status: 500, message: 'An option or configuration value is invalid.' },
  LAPSE_INVALID_INPUT: { status: 400, message: 'The input of a call is invalid.' },
  LAPSE_NOT_FOUND: { status: 404, message: 'No live session with that id.' },
  LAPSE_VERSION_CONFLICT: { status: 409, message: 'The session changed since the expected version.' },
  LAPSE_LOCKED: { status: 423, message: 'The session is leased by someone else.' },
  LAPSE_LOCK_TIMEOUT: { status: 423, message: 'The lease was not released in time.' },
  LAPSE_BACKEND_UNAVAILABLE: { status: 503, message: 'The storage backend failed or cannot be reached.' },
  LAPSE_CLOSED: { status: 503, message: 'The store has been closed.' },
  LAPSE_UNAUTHORIZED: { status: 401, message: 'Missing or invalid credentials.' },
  LAPSE_FORBIDDEN: { status: 403, message: 'The credentials do not allow this action.' },
  LAPSE_PAYLOAD_TOO_LARGE: { status: 413, message: 'The payload is larger than allowed.' },
  LAPSE_RATE_LIMITED: { status: 429, message: 'Too many failed attempts from this client; retry later.' },
  LAPSE_INTERNAL: { status: 500, message: 'An unexpected error; it has been logged.' },
} as const;

export type LapseErrorCode = keyof typeof ERROR_CODES;

/**
 * The single error class of Lapse.
 * @example
 * try { await store.update(id, data, { expectedVersion: 3 }) }
 * catch (err) { if (err instanceof LapseError && err.code === 'LAPSE_VERSION_CONFLICT') retry() }
 */
export class LapseError extends Error {
  override readonly name = 'LapseError';
  readonly code: LapseErrorCode;
  /** HTTP status the service answers this error with. */
  readonly status: number;

  constructor(code: LapseErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERROR_CODES[code].message, options);
    this.code = code;
    this.status = ERROR_CODES[code].status;
  }

  /**
   * The HTTP answer for this error: its status, its code as the body. Hono's default error
   * handler answers with it (it looks for `getResponse`), so a LapseError thrown in a Hono
   * handler — `c.get('lapse').require()`, a store call on a failing backend — is a 401 or a
   * 503, as it is in Express (`status`) and Fastify; never a 500.
   */
  getResponse(): Response {
    return new Response(this.code, { status: this.status, headers: { 'content-type': 'text/plain; charset=UTF-8' } });
  }
}

/** True when `err` is a LapseError, optionally of the given code. */
export function isLapseError(err: unknown, code?: LapseErrorCode): err is LapseError {
  return err instanceof LapseError && (code === undefined || err.code === code);
}

/** Wraps anything a backend throws that is not already a LapseError as LAPSE_BACKEND_UNAVAILABLE. */
export function backendError(err: unknown, what = 'backend operation failed'): LapseError {
  if (err instanceof LapseError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new LapseError('LAPSE_BACKEND_UNAVAILABLE', `${what}: ${detail}`, { cause: err });
}

/**
 * Factories for the errors Lapse throws in more than one place (fastify's createError style):
 * one wording per case, whatever throws it.
 * @example if (!rec) throw errors.notFound(id);
 */
export const errors = {
  invalidOption: (message: string, cause?: unknown) => new LapseError('LAPSE_INVALID_OPTION', message, cause === undefined ? undefined : { cause }),
  invalidInput: (message: string) => new LapseError('LAPSE_INVALID_INPUT', message),
  /** `name must be expected (got value)`; without a value, no `(got …)`. */
  optionMustBe: (name: string, expected: string, ...got: [] | [unknown]) =>
    new LapseError('LAPSE_INVALID_OPTION', `${name} must be ${expected}${got.length === 0 ? '' : ` (got ${JSON.stringify(got[0])})`}`),
  inputMustBe: (name: string, expected: string) => new LapseError('LAPSE_INVALID_INPUT', `${name} must be ${expected}`),
  /** `unknown option 'key'`; `kind` names what it is (a setting), `where` where it was (a file), `known` lists the valid ones. */
  unknownOption: (key: string, o: { kind?: string; where?: string; known?: readonly string[] } = {}) =>
    new LapseError(
      'LAPSE_INVALID_OPTION',
      `unknown ${o.kind ?? 'option'} '${key}'${o.where === undefined ? '' : ` in ${o.where}`}${o.known ? ` (known: ${o.known.join(', ')})` : ''}`,
    ),
  required: (field: string) => new LapseError('LAPSE_INVALID_INPUT', `${field} is required`),
  unauthorized: (message: string) => new LapseError('LAPSE_UNAUTHORIZED', message),
  invalidToken: () => new LapseError('LAPSE_UNAUTHORIZED', 'invalid or expired session token'),
  forbidden: (message: string) => new LapseError('LAPSE_FORBIDDEN', message),
  payloadTooLarge: (what: string, bytes: number, limit: number) =>
    new LapseError('LAPSE_PAYLOAD_TOO_LARGE', `${what} is ${bytes} bytes; the limit is ${limit}`),
  lockTimeout: (id: string, waitedMs: number) => new LapseError('LAPSE_LOCK_TIMEOUT', `session ${id} is still leased after waiting ${waitedMs} ms`),
  notFound: (id: string) => new LapseError('LAPSE_NOT_FOUND', `no live session ${id}`),
  versionConflict: (id: string, actual: number, expected: number | undefined) =>
    new LapseError('LAPSE_VERSION_CONFLICT', `session ${id} is at version ${actual}, not ${expected}`),
  locked: (id: string, owner: string | null, until: number | null) =>
    new LapseError('LAPSE_LOCKED', `session ${id} is leased by ${owner} until ${until}`),
  leaseLost: (id: string, fence: number) => new LapseError('LAPSE_LOCKED', `lease ${fence} on ${id} is no longer in force`),
  closed: (what: string) => new LapseError('LAPSE_CLOSED', `${what} is closed`),
  missingPeer: (name: string, subpath: string, cause?: unknown) =>
    new LapseError('LAPSE_INVALID_OPTION', `${subpath} needs the package '${name}': npm install ${name}`, cause === undefined ? undefined : { cause }),
  peerFailed: (name: string, subpath: string, cause: unknown) =>
    new LapseError('LAPSE_INVALID_OPTION', `${subpath}: '${name}' is installed but failed to load: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    }),
  nativeBinding: (name: string, subpath: string, cause: unknown) =>
    new LapseError(
      'LAPSE_INVALID_OPTION',
      `${subpath}: the native binding of '${name}' failed to load (install scripts blocked, or built for another Node version?): run \`npm rebuild ${name}\` with scripts allowed. ${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}`,
      { cause },
    ),
  backendUnavailable: backendError,
} as const;
