import { describe, expect, it } from 'vitest';
import { isLapseError } from '../src/core/errors.js';
import { assertPeer, requirePeer } from '../src/util/peer.js';

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('optional peers', () => {
  it('a missing peer is LAPSE_INVALID_OPTION naming the package to install', () => {
    for (const fn of [() => requirePeer('lapse-no-such-peer', 'lapse/thing'), () => assertPeer('lapse-no-such-peer', 'lapse/thing')]) {
      const err = caught(fn);
      expect(isLapseError(err, 'LAPSE_INVALID_OPTION')).toBe(true);
      expect((err as Error).message).toBe("lapse/thing needs the package 'lapse-no-such-peer': npm install lapse-no-such-peer");
    }
  });

  it('an installed peer loads, and is the same module every time', () => {
    const a = requirePeer<typeof import('ioredis')>('ioredis', 'lapse/redis');
    expect(typeof a.Redis).toBe('function');
    expect(requirePeer('ioredis', 'lapse/redis')).toBe(a);
    expect(() => assertPeer('pg', 'lapse/postgres')).not.toThrow();
  });
});
