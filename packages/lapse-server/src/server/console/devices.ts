import { createRequire } from 'node:module';
import type { Session } from 'lapse/internal';

interface UaResult {
  browser: { name?: string; version?: string };
  os: { name?: string; version?: string };
  device: { vendor?: string; model?: string; type?: string };
}

// ua-parser-js 1.x (MIT; 2.x is AGPL): CommonJS, no types of its own. A service dependency only.
const require = createRequire(import.meta.url);
const UAParser = require('ua-parser-js') as (ua: string) => UaResult;

/** A session as the console lists it: no data, the user agent parsed. */
export interface DeviceRow {
  id: string;
  userId: string | null;
  createdAt: number;
  lastAccessedAt: number;
  expiresAt: number;
  status: Session['status'];
  ip: string | null;
  userAgent: string | null;
  browser: string | null;
  os: string | null;
  /** 'desktop' when the parser names no type (it names only mobile, tablet, console, ...). */
  device: string | null;
}

const join = (...parts: (string | undefined)[]) => parts.filter((p) => p).join(' ') || null;

/** Browser, OS and device from a user agent string (null parts when it says nothing). */
export function parseUserAgent(ua: string | null | undefined): { browser: string | null; os: string | null; device: string | null } {
  if (!ua) return { browser: null, os: null, device: null };
  const r = UAParser(ua.slice(0, 512));
  const browser = join(r.browser.name, r.browser.version?.split('.')[0]);
  const os = join(r.os.name, r.os.version);
  const model = join(r.device.vendor, r.device.model);
  const device = r.device.type ? join(r.device.type, model ?? undefined) : browser || os ? (model ?? 'desktop') : model;
  return { browser, os, device };
}

export function deviceRow(s: Session): DeviceRow {
  const ua = s.meta.userAgent ?? null;
  return {
    id: s.id,
    userId: s.userId,
    createdAt: s.createdAt,
    lastAccessedAt: s.lastAccessedAt,
    expiresAt: s.expiresAt,
    status: s.status,
    ip: s.meta.ip ?? null,
    userAgent: ua,
    ...parseUserAgent(ua),
  };
}
