/**
 * A real PostgreSQL for tests: initdb into a temp dir, pg_ctl on a free loopback port, the
 * unix socket inside the temp dir, stopped (and the dir removed) on demand. One server per
 * test file; tests isolate themselves with a database or schema of their own.
 *
 * initdb refuses to run as root, so as root (CI) every server command runs as the `postgres`
 * user the Debian package creates, and the temp dir is handed to it.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { freePort } from './redis-server.js';

const run = promisify(execFile);
const BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
const INSTALL = 'apt-get install -y postgresql';
const USER = 'postgres';

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** The URL of another database on this server. */
  urlOf(database: string): string;
  /** Creates a fresh database and returns its URL. */
  createDatabase(prefix?: string): Promise<string>;
  /** pg_ctl stop: 'fast' (a clean shutdown) or 'immediate' (a crash: recovery replays the WAL). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port and data dir. */
  start(): Promise<void>;
  /** Stops it and removes its dir. Idempotent. */
  destroy(): Promise<void>;
}

let available: boolean | undefined;

/** Whether initdb and pg_ctl can be run here. */
export function postgresAvailable(): boolean {
  available ??= existsSync(join(BIN, 'initdb')) && existsSync(join(BIN, 'pg_ctl')) && (!isRoot() || hasUser());
  return available;
}

/** `describe` for suites that need PostgreSQL: fails under CI=true without it, skips elsewhere. */
export function describePostgres(name: string, fn: () => void): void {
  if (postgresAvailable()) describe(name, fn);
  else if (process.env.CI === 'true') {
    describe(name, () => {
      it('needs postgresql', () => {
        throw new Error(`PostgreSQL 15 binaries not found in ${BIN}; CI must install them: ${INSTALL}`);
      });
    });
  } else {
    console.warn(`skipping "${name}": PostgreSQL not found (${INSTALL})`);
    describe.skip(name, fn);
  }
}

/** A schema (or database) name no other test uses. */
export function randomName(prefix = 't'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

/** initdb + pg_ctl start on a free loopback port. */
export async function startPostgres(settings: Record<string, string> = {}): Promise<PostgresServer> {
  const root = mkdtempSync(join(tmpdir(), 'lapse-pg-'));
  chmodSync(root, 0o700);
  const data = join(root, 'data');
  const asUser = isRoot() ? (cmd: string, args: string[]) => ['runuser', ['-u', USER, '--', cmd, ...args]] as const : (cmd: string, args: string[]) => [cmd, args] as const;
  if (isRoot()) {
    const uid = Number(spawnSync('id', ['-u', USER]).stdout.toString().trim());
    const gid = Number(spawnSync('id', ['-g', USER]).stdout.toString().trim());
    chownSync(root, uid, gid);
  }
  const exec = async (cmd: string, args: string[]) => {
    const [c, a] = asUser(join(BIN, cmd), args);
    return run(c, [...a], { cwd: root, timeout: 60_000 });
  };
  // Trust on loopback only (the server listens nowhere else); no fsync at initdb (a test cluster).
  await exec('initdb', ['-D', data, '-U', USER, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions']);
  const opts = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: `'${root}'`,
    max_connections: '100',
    shared_buffers: '32MB',
    // fsync off: the crash tests kill the server processes, not the kernel, so the WAL the
    // server wrote (and acknowledged commits wait for) survives in the page cache anyway.
    fsync: 'off',
    full_page_writes: 'off',
    ...settings,
  };
  let port = 0;
  const start = async () => {
    const o = [`-p ${port}`, ...Object.entries(opts).map(([k, v]) => `-c ${k}=${v}`)].join(' ');
    await exec('pg_ctl', ['start', '-D', data, '-w', '-t', '60', '-l', join(root, 'log'), '-o', o]);
  };
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await start();
      break;
    } catch (err) {
      if (attempt >= 3) {
        rmSync(root, { recursive: true, force: true });
        throw err;
      }
    }
  }
  let running = true;
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    if (!running) return;
    await exec('pg_ctl', ['stop', '-D', data, '-m', mode, '-w', '-t', '60']);
    running = false;
  };
  // The server must not outlive the test process.
  const kill = () => {
    if (!running) return;
    const [c, a] = asUser(join(BIN, 'pg_ctl'), ['stop', '-D', data, '-m', 'immediate']);
    spawnSync(c, [...a], { stdio: 'ignore' });
    rmSync(root, { recursive: true, force: true });
  };
  process.once('exit', kill);
  const urlOf = (db: string) => `postgres://${USER}@127.0.0.1:${port}/${db}`;
  let destroyed = false;
  return {
    url: urlOf('postgres'),
    port,
    urlOf,
    async createDatabase(prefix = 'db') {
      const name = randomName(prefix);
      await exec('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', USER, name]);
      return urlOf(name);
    },
    stop,
    async start() {
      if (running) return;
      await start();
      running = true;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      process.removeListener('exit', kill);
      try {
        await stop('fast');
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function hasUser(): boolean {
  return spawnSync('id', ['-u', USER], { stdio: 'ignore' }).status === 0;
}

/**
 * A PostgreSQL server for the enclosing describe block, with an admin client on it: started in
 * beforeAll, stopped in afterAll. Read `server` and `admin` inside the tests (set once started).
 */
export function usePostgresWithAdmin(): { readonly server: PostgresServer; readonly admin: pg.Client } {
  let server: PostgresServer | undefined;
  let admin: pg.Client | undefined;
  beforeAll(async () => {
    server = await startPostgres();
    admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await server?.destroy();
  });
  return {
    get server() {
      if (!server) throw new Error('the PostgreSQL server has not started yet');
      return server;
    },
    get admin() {
      if (!admin) throw new Error('the PostgreSQL server has not started yet');
      return admin;
    },
  };
}
