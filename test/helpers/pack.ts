import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The repository root (this file is test/helpers/pack.ts). */
export const repoRoot = resolve(import.meta.dirname, '../..');

export interface PackageManifest {
  name: string;
  version: string;
  private?: boolean;
  workspaces?: string[];
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  exports?: Record<string, unknown>;
  bin?: string | Record<string, string>;
  engines?: Record<string, string>;
}

export interface PackedPackage {
  name: string;
  version: string;
  /** Absolute path of the .tgz. */
  tarball: string;
  /** The package's folder in the repository. */
  dir: string;
  manifest: PackageManifest;
}

function readManifest(dir: string): PackageManifest {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageManifest;
}

/**
 * The folders of the packages this repository publishes: each npm workspace (the
 * `workspaces` globs of the root package.json, `dir/*` or exact paths), or the root itself
 * when it has no workspaces (the single-package layout).
 */
export function publishedPackageDirs(root = repoRoot): string[] {
  const patterns = readManifest(root).workspaces;
  if (!patterns || patterns.length === 0) return [root];
  const dirs: string[] = [];
  for (const pattern of patterns) {
    if (pattern.endsWith('/*')) {
      const parent = join(root, pattern.slice(0, -2));
      for (const entry of readdirSync(parent, { withFileTypes: true })) {
        if (entry.isDirectory() && existsSync(join(parent, entry.name, 'package.json'))) dirs.push(join(parent, entry.name));
      }
    } else if (existsSync(join(root, pattern, 'package.json'))) {
      dirs.push(join(root, pattern));
    }
  }
  return dirs.filter((d) => !readManifest(d).private).sort();
}

/** npm's environment without what an enclosing `npm test` exported about this repository. */
export function npmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    const key = k.toLowerCase();
    if (key.startsWith('npm_package_') || key.startsWith('npm_lifecycle_')) continue;
    if (key === 'npm_config_local_prefix' || key === 'npm_config_prefix' || key === 'init_cwd') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * Builds, then packs every published package into `dest` with `npm pack` (scripts off: the
 * build already ran). Works on both layouts: workspaces (packages/*) or one root package.
 */
export function packAll(dest: string, root = repoRoot): PackedPackage[] {
  const dirs = publishedPackageDirs(root);
  const workspaces = dirs.length > 1 || dirs[0] !== root;
  const build = workspaces ? ['run', 'build', '--workspaces', '--if-present'] : ['run', 'build'];
  execFileSync('npm', build, { cwd: root, env: npmEnv(), stdio: 'pipe', timeout: 180_000 });
  return dirs.map((dir) => {
    const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dest], {
      cwd: dir,
      env: npmEnv(),
      encoding: 'utf8',
      timeout: 60_000,
    });
    const [info] = JSON.parse(out) as [{ name: string; version: string; filename: string }];
    return { name: info.name, version: info.version, tarball: join(dest, info.filename), dir, manifest: readManifest(dir) };
  });
}
