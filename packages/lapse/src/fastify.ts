import { assertPeer } from './util/peer.js';

export * from './integrations/fastify.js';

assertPeer('fastify', 'lapse/fastify');
