import type { UserCount } from 'lapse/internal';
import { backendError, LapseError } from 'lapse/internal';
import type { SessionStore } from 'lapse/internal';
import { type DeviceRow, deviceRow } from './devices.js';

/** One page of a prefix search; `cursor` is the last key of the page, null on the last page. */
export interface Page<T> {
  rows: T[];
  cursor: string | null;
}

/** Longest prefix or cursor accepted (ids are at most 256 characters). */
const MAX_KEY = 256;

/**
 * Users and sessions by id prefix, a page at a time, from ordered indexes only: session ids
 * from the backend's id order (scan, which every backend has), user ids from its user index
 * (the optional Backend.scanUsers; without it, only a full user id is found).
 */
export class Directory {
  constructor(
    private readonly store: SessionStore,
    private readonly now: () => number,
  ) {}

  /** Whether user ids can be searched by prefix on this backend. */
  get userPrefix(): boolean {
    return typeof this.store.backend.scanUsers === 'function';
  }

  /** Users whose id starts with `prefix`, after `cursor`. */
  async users(prefix: string, cursor: string | null, limit: number): Promise<Page<UserCount> & { exact: boolean }> {
    check(prefix, cursor);
    const backend = this.store.backend;
    if (!backend.scanUsers) {
      // No user index: the prefix is taken as a full user id.
      if (prefix === '' || cursor !== null) return { rows: [], cursor: null, exact: true };
      const sessions = await this.store.listUser(prefix);
      return { rows: sessions.length > 0 ? [{ userId: prefix, sessions: sessions.length }] : [], cursor: null, exact: true };
    }
    let rows: UserCount[];
    try {
      rows = await backend.scanUsers(prefix, cursor, limit + 1, this.now());
    } catch (err) {
      throw backendError(err);
    }
    const more = rows.length > limit;
    if (more) rows = rows.slice(0, limit);
    return { rows, cursor: more ? (rows[rows.length - 1] as UserCount).userId : null, exact: false };
  }

  /** Sessions whose id starts with `prefix`, after `cursor`, in id order. */
  async sessions(prefix: string, cursor: string | null, limit: number): Promise<Page<DeviceRow>> {
    check(prefix, cursor);
    const out: DeviceRow[] = [];
    let after = cursor;
    // Every id that starts with the prefix sorts at or after it: start at the exact id, then after it.
    if (after === null && prefix !== '') {
      const exact = await this.store.get(prefix);
      if (exact) out.push(deviceRow(exact));
      after = prefix;
    }
    const page = await this.store.page({ cursor: after, limit: limit + 1 - out.length });
    for (const s of page.sessions) {
      if (!s.id.startsWith(prefix)) break;
      out.push(deviceRow(s));
    }
    const more = out.length > limit;
    const rows = more ? out.slice(0, limit) : out;
    return { rows, cursor: more ? (rows[rows.length - 1] as DeviceRow).id : null };
  }

  /** A user's sessions as devices, most recently used first. */
  async devices(userId: string): Promise<DeviceRow[]> {
    return (await this.store.listUser(userId)).map(deviceRow);
  }
}

function check(prefix: string, cursor: string | null): void {
  if (prefix.length > MAX_KEY || (cursor !== null && cursor.length > MAX_KEY)) {
    throw new LapseError('LAPSE_INVALID_INPUT', `a prefix or cursor is at most ${MAX_KEY} characters`);
  }
}
