import type { Socket } from 'socket.io';
import type { Scheduled } from './deadlines.js';

/** One live connection, as the tracker hands it out (a snapshot: changing it changes nothing). */
export interface Connection {
  /** The Socket.IO socket id; kept across a connection state recovery. */
  sid: string;
  userId: string | null;
  /** Public id of the Lapse session behind the socket (never its token). */
  sessionId: string | null;
  ip: string;
  connectedAt: number;
  lastActivityAt: number;
  /** Rooms the socket is in, without its own-id room. */
  rooms: string[];
  /** The idle timeout in force for this connection (ms). */
  idleTimeout: number;
  /** When the connection is cut unless the client does something. */
  expiresAt: number;
  /** A `session_expiring` warning is out and no activity has answered it yet. */
  warned: boolean;
  /** The socket came back through connection state recovery. */
  recovered: boolean;
}

/**
 * What the tracker keeps per connection. Small on purpose: it is multiplied by every socket.
 * Rooms are not copied: Socket.IO's adapter already holds them (`socket.rooms`), and the
 * record is its own entry in the deadline index (`due`, `hi`).
 */
export interface ConnRecord extends Scheduled {
  sid: string;
  socket: Socket;
  userId: string | null;
  sessionId: string | null;
  ip: string;
  connectedAt: number;
  lastActivityAt: number;
  timeout: number;
  /** A warning is out and no activity has answered it yet. */
  warned: boolean;
  /** Last store.touch for this connection, and the interval between two. */
  touchedAt: number;
  touchEvery: number;
  /** Why the tracker is cutting the socket ('idle', 'revoked'…), reported as the disconnect reason. */
  ending: string | null;
}

/** Identity the tracker keeps in `socket.data.lapse`, so that it survives a connection state recovery. */
export interface LapseSocketData {
  sessionId: string | null;
  userId: string | null;
  connectedAt?: number;
  touchEvery?: number;
  /** The session's expiry as the handshake saw it (the tracker checks the session again then). */
  expiresAt?: number;
}

/** The public snapshot of a record. */
export function toConnection(r: ConnRecord): Connection {
  return {
    sid: r.sid,
    userId: r.userId,
    sessionId: r.sessionId,
    ip: r.ip,
    connectedAt: r.connectedAt,
    lastActivityAt: r.lastActivityAt,
    rooms: [...roomsOf(r)],
    idleTimeout: r.timeout,
    expiresAt: r.lastActivityAt + r.timeout,
    warned: r.warned,
    recovered: r.socket.recovered,
  };
}

/** The socket's rooms without its own-id room (read from the adapter). */
export function* roomsOf(r: ConnRecord): IterableIterator<string> {
  for (const room of r.socket.rooms) if (room !== r.sid) yield room;
}
