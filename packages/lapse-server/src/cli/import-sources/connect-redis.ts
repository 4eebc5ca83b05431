import { Redis } from 'ioredis';
import type { PeerSession, PeerSource } from './source.js';

const COUNT = 500;

/** Redis glob metacharacters in a literal prefix. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/**
 * Sessions written by connect-redis: one string `<prefix><sid>` of JSON per session with a
 * native TTL. Read with SCAN, whose cursor survives across runs (a key present for the whole
 * scan is returned at least once; the import is idempotent, so repeats are harmless).
 */
export function connectRedisSource(url: string, prefix = 'sess:'): PeerSource {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true });
  const match = `${globEscape(prefix)}*`;
  return {
    name: `connect-redis ${url} ${prefix}`,
    async total() {
      return undefined;
    },
    async page(cursor) {
      const [next, keys] = await client.scan(cursor ?? '0', 'MATCH', match, 'COUNT', COUNT);
      const sessions: PeerSession[] = [];
      if (keys.length > 0) {
        const pipe = client.pipeline();
        for (const k of keys) pipe.get(k).pttl(k);
        const replies = (await pipe.exec()) ?? [];
        const now = Date.now();
        keys.forEach((key, i) => {
          const [getErr, text] = replies[2 * i] ?? [];
          const [ttlErr, ttl] = replies[2 * i + 1] ?? [];
          if (getErr) throw getErr;
          if (ttlErr) throw ttlErr;
          if (typeof text !== 'string') return; // gone since SCAN saw it
          const ms = Number(ttl);
          sessions.push({ id: key.slice(prefix.length), text, expiresAt: ms >= 0 ? now + ms : null });
        });
      }
      return { sessions, next: next === '0' ? null : next };
    },
    async close() {
      client.disconnect();
    },
  };
}
