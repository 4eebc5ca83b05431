import { assertPeer } from './util/peer.js';

export * from './integrations/hono.js';

assertPeer('hono', 'lapse/hono');
