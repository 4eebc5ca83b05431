/** `lapse-server`: the Lapse service as a function. */
export { createServer } from './app.js';
export type { CreateServerOptions } from './app.js';
export type { LiveConnectionOptions } from './live.js';
export { loadConfig, resolveConfig, SETTINGS, LOG_LEVELS } from './config.js';
export type { LogLevel, ServerConfig, ServerConfigInput, ServiceStoreOptions } from './config.js';
export type { ConnectionStats, ConnectionsProvider, LapseContext, LapseServer } from './context.js';
export { NO_CONNECTIONS } from './context.js';
export { KeyRing, newKey } from './keys.js';
export type { KeyIdentity, KeyKind, KeyRecord } from './keys.js';
export { openBackend, parseBackendUrl, describeBackend } from './backend.js';
export type { BackendTarget } from './backend.js';
export { onShutdown } from './shutdown.js';
export type { ShutdownOptions } from './shutdown.js';
export type { Role } from './auth.js';
export type { ErrorBody } from './errors.js';
