/** `lapse/express-session`: a Store for express-session and @fastify/session on a Lapse store. */
export { LapseStore, type LapseStoreOptions, type StoredSession, userField } from './integrations/express-session.js';
