import { resolve } from 'node:path';
import type { Backend } from 'lapse/internal';
import { memory } from 'lapse/internal';
import type { Clock } from 'lapse/internal';
import { isLapseError, LapseError } from 'lapse/internal';
import type { Logger } from 'lapse/internal';

/** What a backend URL names, parsed. */
export type BackendTarget =
  | { kind: 'memory'; snapshot: string | undefined }
  | { kind: 'sqlite'; path: string }
  | { kind: 'redis'; url: string }
  | { kind: 'redis-cluster'; nodes: string[] }
  | { kind: 'postgres'; url: string; schema: string | undefined };

/** Parses 'memory', 'memory:<snapshot>', 'sqlite:<path>', 'redis://…', 'redis-cluster://h:p,…' or 'postgres://…[?schema=name]' (paths resolved against cwd). */
export function parseBackendUrl(url: string): BackendTarget {
  if (url === 'memory') return { kind: 'memory', snapshot: undefined };
  if (url.startsWith('memory:')) return { kind: 'memory', snapshot: resolve(url.slice('memory:'.length)) };
  if (url.startsWith('sqlite:')) return { kind: 'sqlite', path: resolve(url.slice('sqlite:'.length)) };
  if (/^rediss?:\/\//.test(url)) return { kind: 'redis', url };
  if (url.startsWith('redis-cluster://')) return { kind: 'redis-cluster', nodes: clusterNodes(url) };
  if (/^postgres(ql)?:\/\//.test(url)) return postgresTarget(url);
  throw new LapseError('LAPSE_INVALID_OPTION', `unknown backend ${JSON.stringify(url)}: use 'memory', 'sqlite:<path>', 'redis://host:port', 'redis-cluster://host:port,…' or 'postgres://host/db'`);
}

/** A postgres:// URL, with Lapse's own `schema` parameter taken out (pg would pass it to the server). */
function postgresTarget(url: string): BackendTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new LapseError('LAPSE_INVALID_OPTION', `backend ${describeBackend(url)} is not a valid postgres:// URL`);
  }
  const schema = parsed.searchParams.get('schema') ?? undefined;
  parsed.searchParams.delete('schema');
  return { kind: 'postgres', url: parsed.toString(), schema };
}

/** 'redis-cluster://[user:pass@]h1:p1,h2:p2' as one redis:// URL per seed node (credentials on each). */
function clusterNodes(url: string): string[] {
  const rest = url.slice('redis-cluster://'.length);
  const at = rest.lastIndexOf('@');
  const auth = at >= 0 ? `${rest.slice(0, at)}@` : '';
  const hosts = (at >= 0 ? rest.slice(at + 1) : rest).split(',').map((h) => h.trim());
  if (hosts.length === 0 || hosts.some((h) => !/^[^/@\s]+:\d+$/.test(h))) {
    throw new LapseError('LAPSE_INVALID_OPTION', "redis-cluster backend must list 'redis-cluster://host:port,host:port,…'");
  }
  return hosts.map((h) => `redis://${auth}${h}`);
}

/** The backend URL without a password, safe to print and log. */
export function describeBackend(url: string): string {
  return url.replace(/^(rediss?:\/\/|redis-cluster:\/\/|postgres(?:ql)?:\/\/)([^@/]*)@/, (_, scheme: string) => `${scheme}***@`);
}

// The SQLite and Redis backends load only when asked for, so the service runs on memory
// without their native modules, and one missing piece does not break the others.
const SQLITE_MODULE: string = 'lapse/sqlite';
const REDIS_MODULE: string = 'lapse/redis';
const POSTGRES_MODULE: string = 'lapse/postgres';

async function load<T>(specifier: string, name: string, what: string): Promise<T> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    throw new LapseError('LAPSE_INVALID_OPTION', `the ${what} backend cannot be loaded: ${(err as Error).message}`, { cause: err });
  }
  const factory = mod[name];
  if (typeof factory !== 'function') throw new LapseError('LAPSE_INVALID_OPTION', `the ${what} backend module has no ${name}() export`);
  return factory as T;
}

/**
 * Opens the backend a URL names, loading SQLite or Redis support on demand.
 * @example const backend = await openBackend('sqlite:./data/lapse.db');
 */
export async function openBackend(url: string, opts: { redisPrefix?: string; clock?: Clock; logger?: Logger } = {}): Promise<Backend> {
  const target = parseBackendUrl(url);
  const common = { ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.logger ? { logger: opts.logger } : {}) };
  switch (target.kind) {
    case 'memory':
      return memory({ ...common, ...(target.snapshot ? { snapshot: { path: target.snapshot } } : {}) });
    case 'sqlite': {
      const sqlite = await load<(o: { path: string } & typeof common) => Backend & { grouped(): Backend }>(SQLITE_MODULE, 'sqlite', 'SQLite');
      // Group commit: the writes of one event-loop turn (a server's concurrent requests) share one
      // transaction, each caller still told its own result (docs/sqlite.md, Durability).
      return sqlite({ path: target.path, ...common }).grouped();
    }
    case 'redis': {
      // Redis keeps time on the server side and takes no clock.
      const redis = await load<(o: { url: string; prefix?: string; logger?: Logger }) => Backend>(REDIS_MODULE, 'redis', 'Redis');
      return redis({ url: target.url, ...(opts.redisPrefix ? { prefix: opts.redisPrefix } : {}), ...(opts.logger ? { logger: opts.logger } : {}) });
    }
    case 'postgres': {
      type Pg = Backend & { ready(): Promise<void> };
      const postgres = await load<(o: { url: string; schema?: string; logger?: Logger }) => Pg>(POSTGRES_MODULE, 'postgres', 'PostgreSQL');
      const backend = postgres({ url: target.url, ...(target.schema ? { schema: target.schema } : {}), ...(opts.logger ? { logger: opts.logger } : {}) });
      // A schema Lapse must not touch stops the start; a server that is down does not (calls are 503 until it is up).
      try {
        await backend.ready();
      } catch (err) {
        if (isLapseError(err, 'LAPSE_INVALID_OPTION')) {
          await backend.close();
          throw err;
        }
      }
      return backend;
    }
    case 'redis-cluster': {
      const redis = await load<(o: { cluster: string[]; prefix?: string; logger?: Logger }) => Backend>(REDIS_MODULE, 'redis', 'Redis');
      return redis({ cluster: target.nodes, ...(opts.redisPrefix ? { prefix: opts.redisPrefix } : {}), ...(opts.logger ? { logger: opts.logger } : {}) });
    }
  }
}
