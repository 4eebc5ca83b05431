import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Cluster, Redis } from 'ioredis';

/** The scripts the backend runs; each is `<name>-<numKeys>.lua` next to this module. */
export const SCRIPT_NAMES = [
  'insert', 'touch', 'update', 'remove', 'rotate', 'removeuser', 'listuser', 'lock', 'extendlock',
  'unlock', 'sweep', 'stats', 'scan', 'scanusers', 'userorderfill', 'clear', 'jobrenew', 'jobrelease',
] as const;

export type ScriptName = (typeof SCRIPT_NAMES)[number];

/** Runs one script: its KEYS first, then its ARGV, as its header lists them. */
export type ScriptCall = (...keysThenArgs: (string | number)[]) => Promise<unknown>;

export type Scripts = Record<ScriptName, ScriptCall>;

interface ScriptSource {
  numberOfKeys: number;
  lua: string;
}

// Resolved from this module's own location, so it works from src/ (tsx, vitest) and from
// dist/ (scripts/copy-assets.mjs copies the .lua files there).
const DIR = fileURLToPath(new URL('.', import.meta.url));
const FILE = /^([a-z]+)-(\d+)\.lua$/;

let sources: Map<string, ScriptSource> | undefined;

/** Reads the .lua files once, each with the shared helpers of _lib.lua prepended. */
function readSources(): Map<string, ScriptSource> {
  if (sources) return sources;
  const lib = readFileSync(`${DIR}_lib.lua`, 'utf8');
  const found = new Map<string, ScriptSource>();
  for (const file of readdirSync(DIR)) {
    const m = FILE.exec(file);
    if (!m) continue;
    found.set(m[1] as string, { numberOfKeys: Number(m[2]), lua: `${lib}\n${readFileSync(`${DIR}${file}`, 'utf8')}` });
  }
  const missing = SCRIPT_NAMES.filter((n) => !found.has(n));
  if (missing.length > 0) throw new Error(`Lapse Redis scripts missing from ${DIR}: ${missing.join(', ')}`);
  sources = found;
  return found;
}

/**
 * Defines every script on `client` (ioredis defineCommand: EVALSHA, falling back to EVAL
 * after a Redis restart emptied the script cache) and returns callers for them.
 */
export function defineScripts(client: Redis | Cluster): Scripts {
  const all = readSources();
  const calls = {} as Scripts;
  for (const name of SCRIPT_NAMES) {
    const src = all.get(name) as ScriptSource;
    const command = `lapse_${name}`;
    client.defineCommand(command, src);
    const fn = (client as unknown as Record<string, ScriptCall>)[command] as ScriptCall;
    calls[name] = fn.bind(client);
  }
  return calls;
}
