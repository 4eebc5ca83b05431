/**
 * `lapse/redis`: the Redis session backend and the Redis job lease for the Scheduler.
 * @example
 * import { createStore } from 'lapse';
 * import { redis } from 'lapse/redis';
 * const store = createStore({ backend: redis({ url: process.env.REDIS_URL, prefix: 'myapp:' }) });
 */
export { redis, RedisBackend, type RedisBackendOptions } from './backends/redis/backend.js';
export { redisJobLease, RedisJobLease, type RedisJobLeaseOptions } from './backends/redis/lease.js';
export { RedisRegistry, type RedisRegistryOptions } from './socket.io/registry.js';
export type { ClusterStats } from './socket.io/presence.js';
