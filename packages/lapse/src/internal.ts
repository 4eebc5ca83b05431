/**
 * `lapse/internal`: the building blocks lapse-server shares with the library (validation,
 * records, tokens, error helpers). Not a public API: no semver promise, may change in any release.
 */
export * from './core/backend.js';
export * from './core/clock.js';
export * from './core/data.js';
export * from './core/duration.js';
export * from './core/errors.js';
export * from './core/input.js';
export * from './core/session.js';
export * from './core/store.js';
export * from './core/token.js';
export * from './backends/memory/memory.js';
export * from './scheduler/job.js';
export * from './util/logger.js';
export { idleWindow, type StoredSession, userField, userIdFrom } from './integrations/session-fields.js';
export type { FailureLimit, TrackerOptions } from './socket.io/options.js';
export type { PresenceRegistry } from './socket.io/presence.js';
