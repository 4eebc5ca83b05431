/**
 * `lapse serve` as a child process (the built CLI, what `npm start` runs), for end-to-end
 * tests: one process per node, real HTTP on a free port.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const LIB = join(ROOT, 'packages', 'lapse');
const SERVER = join(ROOT, 'packages', 'lapse-server');
export const CLI = join(SERVER, 'dist', 'cli.js');

/** Newest mtime under a folder. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** `npm test` builds first (pretest); a direct vitest run builds here when dist/ is stale. */
export function ensureBuilt(): void {
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= Math.max(newest(join(LIB, 'src')), newest(join(SERVER, 'src')))) return;
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: LIB, stdio: 'ignore' });
  spawnSync(process.execPath, [join(LIB, 'scripts', 'copy-assets.mjs')], { cwd: LIB, stdio: 'ignore' });
  spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: SERVER, stdio: 'ignore' });
  if (!existsSync(CLI)) throw new Error('packages/lapse-server/dist/cli.js is missing after the build');
}

export interface Running {
  child: ChildProcess;
  url: string;
  stdout: string;
  exited: Promise<number | null>;
}

/** Starts `node dist/cli.js serve` (what `npm start` runs) on a free port; resolves once it listens. */
export async function serve(cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Running> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--data-dir', './data'], {
    cwd,
    env: { PATH: process.env.PATH, LAPSE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start in time:\n${stdout}\n${stderr}`)), 20_000);
    child.stdout?.on('data', (d) => {
      stdout += d;
      const m = /listening on (http:\/\/\S+)/.exec(stdout);
      // The banner is one write: once the URL is there, so is the key (when there is one).
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}:\n${stdout}\n${stderr}`));
    });
  });
  const running: Running = { child, url, stdout, exited };
  child.stdout?.on('data', (d) => (running.stdout += d));
  return running;
}

