/**
 * Scratch apps that install the packed packages from the npm registry, as a user would.
 * One run of vitest shares them between test files (the footprint and README tests):
 * each step runs once per run under a cross-process lock in the run's folder, which the
 * global setup (test/helpers/scratch-setup.ts) creates and removes.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { inject } from 'vitest';
import { type Example, extractExamples } from './examples.js';
import { npmEnv, type PackedPackage, packAll, repoRoot } from './pack.js';

declare module 'vitest' {
  export interface ProvidedContext {
    lapseScratchRoot: string;
  }
}

let ownRoot: string | undefined;

/** The run's shared folder; without the global setup, a folder of this process (removed by cleanupOwnRoot). */
export function scratchRoot(): string {
  const shared = inject('lapseScratchRoot');
  if (shared) return shared;
  ownRoot ??= mkdtempSync(join(tmpdir(), 'lapse-scratch-'));
  return ownRoot;
}

/** Removes the folder scratchRoot() made when there was no global setup. */
export function cleanupOwnRoot(): void {
  if (ownRoot) rmSync(ownRoot, { recursive: true, force: true });
  ownRoot = undefined;
}

/**
 * Runs `fn` once per run across test files: the first caller takes the lock (a folder) and
 * writes the JSON result; the others wait for it (bounded) and read it.
 */
export async function once<T>(name: string, fn: () => Promise<T>, timeoutMs = 600_000): Promise<T> {
  const root = scratchRoot();
  const lock = join(root, `${name}.lock`);
  const done = join(root, `${name}.result.json`);
  let mine = true;
  try {
    mkdirSync(lock);
  } catch {
    mine = false;
  }
  if (!mine) {
    const deadline = Date.now() + timeoutMs;
    while (!existsSync(done)) {
      if (Date.now() > deadline) throw new Error(`${name}: another test file did not finish it within ${timeoutMs} ms`);
      await delay(250);
    }
    const r = JSON.parse(readFileSync(done, 'utf8')) as { value?: T; error?: string };
    if (r.error !== undefined) throw new Error(`${name} failed in another test file: ${r.error}`);
    return r.value as T;
  }
  try {
    const value = await fn();
    writeFileSync(done, JSON.stringify({ value }));
    return value;
  } catch (err) {
    writeFileSync(done, JSON.stringify({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) }));
    throw err;
  }
}

export interface CommandResult {
  code: number | null;
  /** stdout and stderr, interleaved as they came. */
  output: string;
  ms: number;
}

/** Runs a command to its end (bounded); never throws on a non-zero exit. */
export function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = npmEnv(), timeoutMs = 300_000): Promise<CommandResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} took over ${timeoutMs} ms:\n${output.slice(-4000)}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: Date.now() - started });
    });
  });
}

const NPM_INSTALL = ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'];

/** The packed packages of this run (built and packed once). */
export function packed(): Promise<PackedPackage[]> {
  return once('packs', async () => {
    const dest = join(scratchRoot(), 'packs');
    mkdirSync(dest, { recursive: true });
    return packAll(dest);
  });
}

export function lib(packs: PackedPackage[]): PackedPackage {
  const l = packs.find((p) => p.name === 'lapse');
  if (!l) throw new Error(`no package named lapse among ${packs.map((p) => p.name).join(', ')}`);
  return l;
}

/** The service package, `lapse-server`. */
export function serverPackage(packs: PackedPackage[]): PackedPackage {
  const s = packs.find((p) => p.name === 'lapse-server');
  if (!s) throw new Error(`no package named lapse-server among ${packs.map((p) => p.name).join(', ')}`);
  return s;
}

/**
 * A scratch ESM app: package.json with the given dependencies, every packed package pinned
 * to its tarball (also through `overrides`, so that lapse-server's dependency on lapse never
 * reaches the registry's unrelated `lapse`), then `npm install`.
 */
export async function installApp(dir: string, packs: PackedPackage[], deps: Record<string, string>, extraArgs: string[] = []): Promise<CommandResult> {
  mkdirSync(dir, { recursive: true });
  const overrides = Object.fromEntries(packs.map((p) => [p.name, `file:${p.tarball}`]));
  const pkgPath = join(dir, 'package.json');
  const prev = existsSync(pkgPath) ? (JSON.parse(readFileSync(pkgPath, 'utf8')) as { dependencies?: Record<string, string> }) : {};
  const dependencies = { ...prev.dependencies, ...deps };
  for (const name of Object.keys(dependencies)) if (name in overrides) dependencies[name] = overrides[name] as string;
  writeFileSync(pkgPath, JSON.stringify({ name: 'scratch-app', private: true, type: 'module', dependencies, overrides }, null, 2));
  const res = await run('npm', [...NPM_INSTALL, ...extraArgs], dir);
  if (res.code !== 0) throw new Error(`npm install in ${dir} failed (${res.code}):\n${res.output.slice(-6000)}`);
  return res;
}

interface Lockfile {
  packages: Record<string, { version?: string; link?: boolean; hasInstallScript?: boolean; dev?: boolean }>;
}

/** Installed package names (from package-lock.json; one per name@version, nested copies too). */
export function installedPackages(dir: string): { all: Set<string>; withInstallScript: string[] } {
  const lock = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8')) as Lockfile;
  const all = new Set<string>();
  const withInstallScript: string[] = [];
  for (const [path, meta] of Object.entries(lock.packages)) {
    if (path === '' || meta.link) continue;
    const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
    all.add(`${name}@${meta.version}`);
    if (meta.hasInstallScript) withInstallScript.push(name);
  }
  return { all, withInstallScript };
}

/** Folders named `build` that node-gyp leaves in an installed package (what a native compile leaves). */
export function nativeBuilds(dir: string): string[] {
  const found: string[] = [];
  const walk = (nm: string) => {
    if (!existsSync(nm)) return;
    for (const e of readdirSync(nm, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name === '.bin') continue;
      if (e.name.startsWith('@')) {
        walk(join(nm, e.name));
        continue;
      }
      const pkg = join(nm, e.name);
      if (existsSync(join(pkg, 'build', 'Release'))) found.push(e.name);
      walk(join(pkg, 'node_modules'));
    }
  };
  walk(join(dir, 'node_modules'));
  return found;
}

export interface Stage {
  dir: string;
  install: CommandResult;
  /** What the install left, read before any later stage adds to the same app. */
  packages: string[];
  withInstallScript: string[];
  nativeBuilds: string[];
}

function measure(dir: string, install: CommandResult): Stage {
  const { all, withInstallScript } = installedPackages(dir);
  return { dir, install, packages: [...all].sort(), withInstallScript, nativeBuilds: nativeBuilds(dir) };
}

/** An app with only express: what express installs by itself (the footprint's baseline). */
export function expressOnly(): Promise<Stage> {
  return once('app-express-only', async () => {
    const dir = join(scratchRoot(), 'express-only');
    return measure(dir, await installApp(dir, [], { express: '^5.1.0' }));
  });
}

/** Stage 1: an Express app that adds `lapse` (the footprint test measures this one). */
export function expressWithLapse(): Promise<Stage> {
  return once('app-express-lapse', async () => {
    const packs = await packed();
    const dir = join(scratchRoot(), 'app');
    return measure(dir, await installApp(dir, packs, { express: '^5.1.0', lapse: 'file:' }));
  });
}

/** Stage 2: the same app after `npm install better-sqlite3` (the one native compile of the run). */
export function withSqlite(): Promise<Stage> {
  return once('app-sqlite', async () => {
    const { dir } = await expressWithLapse();
    const packs = await packed();
    return measure(dir, await installApp(dir, packs, { 'better-sqlite3': '^12.4.1' }));
  });
}

/** The frameworks, drivers and types that the README and docs examples (and the subpath type-checks) import. */
export const EXAMPLE_DEPS: Record<string, string> = {
  'express-session': '^1.18.0',
  'socket.io': '^4.8.1',
  'socket.io-client': '^4.8.1',
  hono: '^4.9.0',
  '@hono/node-server': '^2.1.9',
  fastify: '^5.6.0',
  '@fastify/session': '^11.1.0',
  '@fastify/cookie': '^11.0.2',
  ioredis: '^5.7.0',
  pg: '^8.16.0',
  '@types/node': '^20.19.0',
  '@types/express': '^5.0.3',
  '@types/express-session': '^1.18.2',
  '@types/better-sqlite3': '^7.6.13',
  '@types/pg': '^8.15.0',
};

/** Stage 3: the same app with every framework the examples use, and the service package. */
export function fullApp(): Promise<Stage & { packs: PackedPackage[] }> {
  return once('app-full', async () => {
    const { dir } = await withSqlite();
    const packs = await packed();
    const server = serverPackage(packs);
    const install = await installApp(dir, packs, { ...EXAMPLE_DEPS, [server.name]: 'file:' });
    return { ...measure(dir, install), packs };
  });
}

/** The documents whose ```ts examples are programs that the README test runs. */
export const EXAMPLE_DOCS = ['README.md', 'docs/integrations.md'];

/** The runnable examples (fragments left out). */
export function programExamples(): Example[] {
  return EXAMPLE_DOCS.flatMap((doc) => extractExamples(repoRoot, doc)).filter((e) => !e.fragment);
}

/** An example's file in the full app, relative to it (as tsc names it in its errors). */
export function exampleFile(e: Example): string {
  return `examples/${e.doc.replace(/[/.]/g, '_')}-${(e.title as string).replace(/\.ts$/, '')}/${e.title}`;
}

/** What a user imports for each subpath of `lapse`, and the service package. */
export function userSpecifiers(packs: PackedPackage[]): string[] {
  const subpaths = Object.keys(lib(packs).manifest.exports ?? {}).filter((k) => k !== './package.json');
  const specifiers = subpaths.map((k) => (k === '.' ? 'lapse' : `lapse/${k.slice(2)}`));
  specifiers.push(serverPackage(packs).name);
  return specifiers;
}

/** The small user file that imports one specifier, relative to the full app. */
export function specifierFile(spec: string): string {
  return `subpaths/use-${spec.replace(/[^a-z0-9]+/gi, '-')}.ts`;
}

export interface Typecheck {
  code: number | null;
  output: string;
  specifiers: string[];
}

/**
 * Writes every runnable example of the docs and one user file per subpath into the full
 * app, then type-checks them all in ONE tsc program (`tsc --noEmit`, moduleResolution
 * nodenext, strict, skipLibCheck false): one run instead of two or more on a 2-core machine.
 * Errors name the file, so each test reads those of its own files.
 */
export function typecheckFullApp(): Promise<Typecheck> {
  return once('typecheck', async () => {
    const { dir, packs } = await fullApp();
    const files: string[] = [];
    for (const e of programExamples()) {
      const file = exampleFile(e);
      mkdirSync(join(dir, file, '..'), { recursive: true });
      writeFileSync(join(dir, file), e.code);
      files.push(file);
    }
    const specifiers = userSpecifiers(packs);
    mkdirSync(join(dir, 'subpaths'), { recursive: true });
    for (const spec of specifiers) {
      writeFileSync(join(dir, specifierFile(spec)), `import * as api from '${spec}';
const names: string[] = Object.keys(api);
console.log('${spec}', names.length);
`);
      files.push(specifierFile(spec));
    }
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, skipLibCheck: false, noEmit: true, types: ['node'] },
        files,
      }),
    );
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const res = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], dir, process.env, 240_000);
    return { code: res.code, output: res.output, specifiers };
  });
}
