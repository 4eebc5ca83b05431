import { type Duration, MAX_DURATION_MS, parsePositiveDuration } from './duration.js';
import { errors, LapseError } from './errors.js';
import { isValidId } from './token.js';

/** What `create` accepts. */
export interface CreateInput {
  userId?: string | null;
  data?: unknown;
  ip?: string;
  userAgent?: string;
  idleTimeout?: Duration;
  absoluteTimeout?: Duration;
}

const CREATE_KEYS = new Set(['userId', 'data', 'ip', 'userAgent', 'idleTimeout', 'absoluteTimeout']);

/** Checks a user id: a non-empty string of at most 256 characters, or null/undefined. */
export function checkUserId(userId: unknown): string | null {
  if (userId === undefined || userId === null) return null;
  if (!isValidId(userId)) {
    throw errors.inputMustBe('userId', 'a non-empty string of at most 256 characters without control characters');
  }
  return userId;
}

/** Checks a session id given by a caller. */
export function checkId(id: unknown): string {
  if (!isValidId(id)) throw errors.inputMustBe('id', 'a non-empty string of at most 256 characters');
  return id;
}

/**
 * Request metadata (ip, user agent): a string, cut to `max`. A NUL is refused: PostgreSQL text
 * cannot hold one, and in a group commit it would fail the other callers' writes of the batch.
 */
function optionalText(v: unknown, name: string, max: number): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.includes('\u0000')) throw errors.inputMustBe(name, 'a string without NUL characters');
  return v.slice(0, max);
}

/** Validates `create` input; returns normalized fields (durations in ms or undefined). */
export function checkCreateInput(input: unknown) {
  if (input === undefined) input = {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new LapseError('LAPSE_INVALID_INPUT', 'create() takes an object');
  }
  for (const key of Object.keys(input)) {
    if (!CREATE_KEYS.has(key)) throw new LapseError('LAPSE_INVALID_INPUT', `unknown field '${key}'`);
  }
  const i = input as CreateInput;
  return {
    userId: checkUserId(i.userId),
    data: i.data === undefined ? {} : i.data,
    ip: optionalText(i.ip, 'ip', 64),
    userAgent: optionalText(i.userAgent, 'userAgent', 512),
    idleTimeout: i.idleTimeout === undefined ? undefined : inputDuration(i.idleTimeout, 'idleTimeout'),
    absoluteTimeout: i.absoluteTimeout === undefined ? undefined : inputDuration(i.absoluteTimeout, 'absoluteTimeout'),
  };
}

/** A duration given per call: bad values are the caller's input, not configuration. */
export function inputDuration(v: Duration, name: string, max = MAX_DURATION_MS): number {
  try {
    return parsePositiveDuration(v, name, max);
  } catch (err) {
    throw errors.invalidInput((err as Error).message);
  }
}
