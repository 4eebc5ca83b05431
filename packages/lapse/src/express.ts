import { assertPeer } from './util/peer.js';

export * from './integrations/express.js';

assertPeer('express', 'lapse/express');
