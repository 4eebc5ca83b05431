/**
 * Socket.IO server options that fit the tracker. Spread them, since Socket.IO writes into
 * the object it is given: `new Server(httpServer, { ...recommendedServerOptions, cors })`.
 *
 * - pingInterval 25 s / pingTimeout 20 s: a dead or frozen client is found within 45 s.
 * - maxHttpBufferSize 1 MB: a client cannot make the server buffer more per message.
 * - connectionStateRecovery: after a network cut of up to 2 minutes the client gets back
 *   its socket id, rooms, `socket.data` and the packets it missed. `skipMiddlewares` is
 *   false (Socket.IO's default is true) so that a recovered socket is authenticated again:
 *   a session revoked or expired during the cut does not come back through recovery.
 */
export const recommendedServerOptions = {
  pingInterval: 25_000,
  pingTimeout: 20_000,
  maxHttpBufferSize: 1e6,
  connectionStateRecovery: {
    maxDisconnectionDuration: 2 * 60 * 1000,
    skipMiddlewares: false,
  },
};
