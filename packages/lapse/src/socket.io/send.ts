import type { Socket } from 'socket.io';

/** Socket.IO's packet type of an event (socket.io-parser's PacketType.EVENT). */
const EVENT = 2;

interface Packet {
  type: number;
  data: unknown[];
}

/** The two internals of a Socket.IO 4 socket that emit() itself ends up calling. */
interface RawSocket {
  packet(packet: Packet, opts?: object): void;
  notifyOutgoingListeners?(packet: Packet): void;
}

/**
 * Sends one of Lapse's own events to a socket with exactly the documented payload. With
 * connection state recovery on, `socket.emit` goes through the adapter, which appends its
 * recovery offset as an extra argument; clients other than socket.io-client (python-socketio)
 * then call a one-argument handler with two and it fails. These notices describe the
 * present, so neither the offset nor a replay after a recovery is wanted.
 */
export function sendDirect(socket: Socket, event: string, payload: object): void {
  const raw = socket as unknown as RawSocket;
  const packet: Packet = { type: EVENT, data: [event, payload] };
  raw.notifyOutgoingListeners?.(packet);
  raw.packet(packet);
}
