import { LapseError, type LapseErrorCode } from '../../core/errors.js';

/**
 * The numeric result codes every script returns first (see the header of each .lua file),
 * and the one place where they become LapseError codes.
 */
export const RESULT = { OK: 0, NOT_FOUND: 1, LOCKED: 2, VERSION_CONFLICT: 3, EXISTS: 4 } as const;

const ERROR_OF: Record<number, LapseErrorCode> = {
  [RESULT.NOT_FOUND]: 'LAPSE_NOT_FOUND',
  [RESULT.LOCKED]: 'LAPSE_LOCKED',
  [RESULT.VERSION_CONFLICT]: 'LAPSE_VERSION_CONFLICT',
  [RESULT.EXISTS]: 'LAPSE_INVALID_INPUT',
};

/** What the caller asked for, to word the error. */
export interface RefusalContext {
  id: string;
  /** The id a rotate moves to (the one that may already exist). */
  newId?: string;
  expectedVersion?: number;
  fence?: number;
}

/**
 * Throws the LapseError for a non-zero script reply; returns the reply otherwise.
 * The extra values after the code are those the script's header names for that code.
 */
export function checkReply(reply: unknown, ctx: RefusalContext): unknown[] {
  const r = reply as unknown[];
  const code = Number(r[0]);
  if (code === RESULT.OK) return r;
  const errorCode = ERROR_OF[code];
  if (errorCode === undefined) throw new Error(`unexpected script reply ${JSON.stringify(reply)}`);
  throw new LapseError(errorCode, message(code, r, ctx));
}

function message(code: number, r: unknown[], ctx: RefusalContext): string {
  switch (code) {
    case RESULT.NOT_FOUND:
      return `no live session ${ctx.id}`;
    case RESULT.LOCKED:
      return r.length > 1
        ? `session ${ctx.id} is leased by ${String(r[1])} until ${String(r[2])}`
        : `lease ${ctx.fence} on ${ctx.id} is no longer in force`;
    case RESULT.VERSION_CONFLICT:
      return `session ${ctx.id} is at version ${String(r[1])}, not ${ctx.expectedVersion}`;
    default:
      return `a session with id ${ctx.newId ?? ctx.id} exists`;
  }
}
