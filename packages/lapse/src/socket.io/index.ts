/** lapse/socket.io: live connections of a Socket.IO server, tracked per user and room, cut when idle. */
export { trackConnections, ConnectionTracker, CLIENT_EVENTS } from './tracker.js';
export type { TrackerEvents, TrackerSizes, TrackerStats, SessionExpiredPayload } from './tracker.js';
export { recommendedServerOptions } from './server-options.js';
export { mountLiveConnections } from './mount.js';
export type { LiveConnections, MountOptions } from './mount.js';
export type { FailureLimit, TrackerOptions } from './options.js';
export type { Connection, LapseSocketData } from './connection.js';
export type { ConnectErrorData } from './auth.js';
export type { MetricsOptions } from './metrics.js';
export type { ClusterStats, PresenceEntry, PresenceRegistry, PresenceSource } from './presence.js';
