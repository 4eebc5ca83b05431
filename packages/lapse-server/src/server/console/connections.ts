import type { Connection } from 'lapse/socket.io';
import type { ConnectionTracker } from 'lapse/socket.io';

/** A live connection as the console's table shows it. */
export interface ConnectionRow {
  sid: string;
  userId: string | null;
  sessionId: string | null;
  rooms: string[];
  ip: string;
  connectedAt: number;
  lastActivityAt: number;
  node: string;
}

/** Rows per answer at most. */
export const MAX_ROWS = 500;

/**
 * This node's live connections, filtered by user and room through the tracker's indexes
 * (both: the smaller set, checked against the other). Without a filter, the first `limit`
 * connections; the table says how many there are in all.
 */
export function listConnections(
  tracker: ConnectionTracker,
  node: string,
  filter: { user?: string; room?: string; limit: number },
): { rows: ConnectionRow[]; total: number } {
  const { user, room } = filter;
  const limit = Math.min(Math.max(1, filter.limit), MAX_ROWS);
  let found: Connection[];
  if (user !== undefined && room !== undefined) {
    const byUser = tracker.countUser(user) <= tracker.countRoom(room);
    found = (byUser ? tracker.byUser(user) : tracker.inRoom(room)).filter((c) => (byUser ? c.rooms.includes(room) : c.userId === user));
  } else if (user !== undefined) found = tracker.byUser(user);
  else if (room !== undefined) found = tracker.inRoom(room);
  else {
    found = [];
    for (const e of tracker.entries()) {
      const c = tracker.get(e.sid);
      if (c) found.push(c);
      if (found.length >= limit) break;
    }
    return { rows: found.map((c) => rowOf(c, node)), total: tracker.stats().totalSessions };
  }
  found.sort((a, b) => a.connectedAt - b.connectedAt);
  return { rows: found.slice(0, limit).map((c) => rowOf(c, node)), total: found.length };
}

function rowOf(c: Connection, node: string): ConnectionRow {
  return {
    sid: c.sid,
    userId: c.userId,
    sessionId: c.sessionId,
    rooms: c.rooms,
    ip: c.ip,
    connectedAt: c.connectedAt,
    lastActivityAt: c.lastActivityAt,
    node,
  };
}
