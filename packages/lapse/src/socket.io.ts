import { assertPeer } from './util/peer.js';

export * from './socket.io/index.js';

assertPeer('socket.io', 'lapse/socket.io');
