import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const packages = join(import.meta.dirname, '..', '..');

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  scripts?: Record<string, string>;
}
const manifest = (dir: string) => JSON.parse(readFileSync(join(packages, dir, 'package.json'), 'utf8')) as Manifest;

/** Every import specifier in the files under `dir`. */
function importsUnder(dir: string): Set<string> {
  const out = new Set<string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !/\.(ts|mjs|js)$/.test(entry.name)) continue;
    // Code only: an import in a doc comment's example is not one the package makes.
    const text = readFileSync(join(entry.parentPath, entry.name), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
    const patterns = [/(?:from\s+|import\s*\(\s*|require(?:\.resolve)?\s*\(\s*)['"]([^'"]+)['"]/g, /(?:requirePeer|assertPeer)(?:<[^>]*>)?\(\s*['"]([^'"]+)['"]/g];
    for (const re of patterns) for (const m of text.matchAll(re)) out.add(m[1] as string);
  }
  return out;
}

const packageOf = (spec: string) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string));
const external = (dir: string) =>
  new Set(
    [...importsUnder(join(packages, dir, 'src'))]
      .filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtinModules.includes(s))
      .map(packageOf),
  );

// Pinned, not imported: fastify's light-my-request >= 6.8 pulls cookie@2, whose engines refuse Node 20.
const PINS: Record<string, string[]> = { 'lapse-server': ['light-my-request'] };

describe.each(['lapse', 'lapse-server'])('%s', (dir) => {
  const pkg = manifest(dir);
  it('installs for users only what the shipped code imports', () => {
    const shipped = external(dir);
    // The service installs the drivers lapse's subpaths load as optional peers (lapse/socket.io needs socket.io, ...).
    const peersOfLapse = dir === 'lapse-server' ? Object.keys(manifest('lapse').peerDependencies ?? {}) : [];
    const unused = Object.keys(pkg.dependencies ?? {}).filter((d) => !shipped.has(d) && ![...(PINS[dir] ?? []), ...peersOfLapse].includes(d));
    expect(unused).toEqual([]);
  });
  it('declares every package the shipped code imports, as a dependency or a peer', () => {
    const declared = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
    expect([...external(dir)].filter((d) => !declared.has(d) && d !== pkg.name)).toEqual([]);
  });
  it('runs no install script', () => {
    expect(Object.keys(pkg.scripts ?? {}).filter((s) => /^(pre|post)?(install|prepare)$/.test(s))).toEqual([]);
  });
});

it('lapse: every peer is optional, and the dependencies are only small pure-JS ones', () => {
  const pkg = manifest('lapse');
  const peers = Object.keys(pkg.peerDependencies ?? {});
  expect(peers.filter((p) => pkg.peerDependenciesMeta?.[p]?.optional !== true)).toEqual([]);
  expect(Object.keys(pkg.dependencies ?? {}).sort()).toEqual(['cookie', 'croner', 'sorted-btree']);
});
