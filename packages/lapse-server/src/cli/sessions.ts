import type { Command } from 'commander';
import { errors, LapseError } from 'lapse/internal';
import type { Session } from 'lapse/internal';
import { type CliIO, iso, json, table } from './io.js';
import { configOf, dataOptions, withStore } from './store.js';

const row = (s: Session) => ({
  id: s.id,
  user: s.userId,
  status: s.status,
  lastAccessed: iso(s.lastAccessedAt),
  expires: iso(s.expiresAt),
  accesses: s.accessCount,
});
const COLUMNS = ['id', 'user', 'status', 'lastAccessed', 'expires', 'accesses'];

function positive(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw errors.invalidInput(`expected a whole number >= 1, got '${v}'`);
  return n;
}

/** `lapse sessions list|show|revoke`. */
export function sessionsCommand(program: Command, io: CliIO): void {
  const sessions = program.command('sessions').description('list, show and revoke sessions');

  dataOptions(sessions.command('list'))
    .description('list live sessions, a page at a time, in id order')
    .option('--limit <n>', 'sessions per page (max 1000)', positive, 50)
    .option('--cursor <cursor>', 'continue after this cursor (printed under the previous page)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ lapse sessions list --limit 20\n  $ lapse sessions list --json --cursor <cursor>')
    .action(async (opts: { limit: number; cursor?: string; json?: boolean }) => {
      const page = await withStore(configOf(opts, io), (store) => store.page({ cursor: opts.cursor ?? null, limit: opts.limit }));
      if (opts.json) return json(io, page);
      table(io, page.sessions.map(row), COLUMNS);
      if (page.cursor) io.stdout.write(`\nmore: lapse sessions list --cursor ${page.cursor}\n`);
    });

  dataOptions(sessions.command('show').argument('<id>', 'session id'))
    .description('show one session (counts no access)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ lapse sessions show 3q2-7wE0eS1x0bYlq0cR1A')
    .action(async (id: string, opts: { json?: boolean }) => {
      const session = await withStore(configOf(opts, io), (store) => store.get(id));
      if (!session) throw errors.notFound(id);
      if (opts.json) return json(io, session);
      const fields: Record<string, unknown> = { ...row(session), created: iso(session.createdAt), absoluteExpires: iso(session.absoluteExpiresAt), version: session.version, lock: session.lock, meta: session.meta, data: session.data };
      for (const [k, v] of Object.entries(fields)) io.stdout.write(`${k.padEnd(16)}${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v ?? '-')}\n`);
    });

  dataOptions(sessions.command('revoke').argument('<id>', 'session id'))
    .description('end a session by id (even when leased)')
    .addHelpText('after', "\nExample:\n  $ lapse sessions revoke 3q2-7wE0eS1x0bYlq0cR1A\n  $ lapse sessions revoke -- -dYxREnKAP-Y01ze3kF5yQ   # an id that starts with '-'")
    .action(async (id: string, opts: Record<string, unknown>) => {
      const done = await withStore(configOf(opts, io), async (store) => {
        // An operator's revoke overrides a lease: take it over (wait up to its length), then delete.
        if (!(await store.has(id))) return false;
        return store.withLock(id, (lease) => store.delete(id, { lease }), { owner: 'lapse-cli', wait: '30s' }).catch((err: unknown) => {
          if (err instanceof LapseError && err.code === 'LAPSE_NOT_FOUND') return false;
          throw err;
        });
      });
      if (!done) throw errors.notFound(id);
      io.stdout.write(`revoked ${id}\n`);
    });
}

/** `lapse users sessions|revoke`. */
export function usersCommand(program: Command, io: CliIO): void {
  const users = program.command('users').description("a user's sessions");

  dataOptions(users.command('sessions').argument('<userId>', 'user id'))
    .description("list a user's live sessions, most recently used first")
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ lapse users sessions alice --json')
    .action(async (userId: string, opts: { json?: boolean }) => {
      const list = await withStore(configOf(opts, io), (store) => store.listUser(userId));
      if (opts.json) return json(io, list);
      table(io, list.map(row), COLUMNS);
    });

  dataOptions(users.command('revoke').argument('<userId>', 'user id'))
    .description('end every session of a user ("log out everywhere")')
    .option('--except <id>', 'keep this session')
    .addHelpText('after', '\nExample:\n  $ lapse users revoke alice --except 3q2-7wE0eS1x0bYlq0cR1A')
    .action(async (userId: string, opts: { except?: string }) => {
      const n = await withStore(configOf(opts, io), (store) => store.revokeUser(userId, opts.except ? { except: opts.except } : {}));
      io.stdout.write(`revoked ${n} session${n === 1 ? '' : 's'} of ${userId}\n`);
    });
}
