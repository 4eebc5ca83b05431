import { LapseError } from '../../core/errors.js';
import { REFUSALS } from './schema.js';

/**
 * What a failed PostgreSQL call means to Lapse: a refusal raised by a Lapse function (its
 * SQLSTATE, see schema.ts) becomes that LapseError; a duplicate id is bad input; anything
 * else (connection lost, pool timeout, server restarting) is a plain Error naming the call,
 * which the store reports as LAPSE_BACKEND_UNAVAILABLE.
 */
export function mapError(what: string, err: unknown): Error {
  if (err instanceof LapseError) return err;
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string') {
    const lapse = (REFUSALS as Record<string, (typeof REFUSALS)[keyof typeof REFUSALS]>)[code];
    if (lapse) return new LapseError(lapse, message);
    if (code === '23505') return new LapseError('LAPSE_INVALID_INPUT', `postgres ${what}: ${message}`);
  }
  return new Error(`postgres ${what}: ${message}`, { cause: err });
}
