import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { Command } from 'commander';
import { LapseError } from 'lapse/internal';
import { progress } from './progress.js';
import { expiresAtOf, RECORD_FIELDS, type SessionRecord } from 'lapse/internal';
import { importSourceOptions, runSourceImport } from './import-sources/command.js';
import { type CliIO, json } from './io.js';
import { configOf, dataOptions, withStore } from './store.js';

const FORMAT = 'lapse-export';
const PAGE = 500;

/** The first line of an export. */
interface Header {
  format: typeof FORMAT;
  version: 1;
  exportedAt: number;
  backend: string;
  count: number;
}

const NUMBERS = ['createdAt', 'lastAccessedAt', 'expiresAt', 'absoluteExpiresAt', 'idleTimeout', 'accessCount', 'version'] as const;

/** Checks one exported record; throws with the line number when it is not one. */
export function parseRecord(line: string, n: number): SessionRecord {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new LapseError('LAPSE_INVALID_INPUT', `line ${n}: not JSON`);
  }
  const str = (k: string) => typeof v[k] === 'string';
  const strOrNull = (k: string) => v[k] === null || typeof v[k] === 'string';
  const ok =
    v !== null &&
    typeof v === 'object' &&
    str('id') &&
    str('secretHash') &&
    str('data') &&
    strOrNull('userId') &&
    strOrNull('ip') &&
    strOrNull('userAgent') &&
    NUMBERS.every((k) => typeof v[k] === 'number' && Number.isFinite(v[k]));
  if (!ok) throw new LapseError('LAPSE_INVALID_INPUT', `line ${n}: not a Lapse session record`);
  try {
    JSON.parse(v.data as string);
  } catch {
    throw new LapseError('LAPSE_INVALID_INPUT', `line ${n}: data is not JSON text`);
  }
  const rec = {} as Record<string, unknown>;
  for (const k of RECORD_FIELDS) rec[k] = v[k];
  // A lease does not travel: it belongs to a process of the old deployment.
  rec.lock = null;
  // The expiry rule decides, not the file: backends may derive expiresAt from the other times.
  rec.expiresAt = expiresAtOf(v.lastAccessedAt as number, v.idleTimeout as number, v.absoluteExpiresAt as number);
  return rec as unknown as SessionRecord;
}

/** The fields of a record that travel (a backend's own bookkeeping on it does not; nor does a lease). */
function exported(rec: SessionRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of RECORD_FIELDS) out[k] = rec[k];
  out.lock = null;
  return out;
}

async function write(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

/** `lapse export` and `lapse import`: JSON Lines, with the secret hashes, so tokens stay valid. */
export function transferCommands(program: Command, io: CliIO): void {
  dataOptions(program.command('export'))
    .description('write every live session as JSON Lines (with secret hashes: tokens stay valid after an import)')
    .option('-o, --out <file>', 'write to this file (mode 0600) instead of stdout')
    .addHelpText('after', '\nExample:\n  $ lapse export -o sessions.jsonl\n  $ lapse export --backend sqlite:./old.db | lapse import - --backend redis://127.0.0.1:6380')
    .action(async (opts: { out?: string }) => {
      const out: Writable = opts.out ? createWriteStream(opts.out, { mode: 0o600 }) : (io.stdout as unknown as Writable);
      const count = await withStore(configOf(opts, io), async (store) => {
        const backend = store.backend;
        const now = Date.now();
        const total = await backend.count(now);
        const bar = progress({ label: 'export', total, stream: io.stderr, unit: 'sessions' });
        const header: Header = { format: FORMAT, version: 1, exportedAt: now, backend: backend.name, count: total };
        await write(out, `${JSON.stringify(header)}\n`);
        let after: string | null = null;
        let n = 0;
        for (;;) {
          const page: SessionRecord[] = await backend.scan(after, PAGE, Date.now());
          for (const rec of page) await write(out, `${JSON.stringify(exported(rec))}\n`);
          n += page.length;
          bar.update(n, Math.max(total, n));
          if (page.length < PAGE) break;
          after = (page[page.length - 1] as SessionRecord).id;
        }
        bar.finish();
        return n;
      });
      if (opts.out) {
        out.end();
        await once(out, 'finish');
      }
      io.stderr.write(`exported ${count} session${count === 1 ? '' : 's'}\n`);
    });

  importSourceOptions(dataOptions(program.command('import').argument('<file>', "a file written by 'lapse export', or - for stdin; with --from, the store's URL or file")))
    .description('read sessions from JSON Lines; existing ids are skipped unless --replace')
    .option('--replace', 'overwrite sessions whose id already exists')
    .option('--json', 'print the counts as JSON')
    .addHelpText('after', '\nExample:\n  $ lapse import sessions.jsonl --data-dir ./data\n  $ lapse import - --replace < sessions.jsonl')
    .action(async (file: string, opts: { replace?: boolean; json?: boolean; from?: string }) => {
      if (opts.from) return runSourceImport(file, opts, io);
      const input: Readable = file === '-' ? io.stdin : createReadStream(file);
      const size = file === '-' ? undefined : statSync(file).size;
      const bar = progress({ label: 'import', ...(size ? { total: size } : {}), stream: io.stderr, unit: 'bytes' });
      const counts = await withStore(
        configOf(opts, io),
        async (store) => {
          const c = { imported: 0, skipped: 0, expired: 0 };
          let n = 0;
          let bytes = 0;
          for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
            n++;
            bytes += Buffer.byteLength(line) + 1;
            if (line.trim() === '') continue;
            if (n === 1 && line.includes(`"format":"${FORMAT}"`)) continue;
            const rec = parseRecord(line, n);
            const now = Date.now();
            if (rec.expiresAt <= now) {
              c.expired++;
              continue;
            }
            try {
              // Straight to the backend: the record keeps its id, secret hash and times. No caps
              // apply, so an import never evicts what it just brought in.
              await store.backend.insert(rec, now, {}, opts.replace ? { replace: true } : {});
              c.imported++;
            } catch (err) {
              if (!(err instanceof LapseError) || (err.code !== 'LAPSE_INVALID_INPUT' && err.code !== 'LAPSE_LOCKED')) throw err;
              c.skipped++;
            }
            bar.update(bytes);
          }
          return c;
        },
        { create: true },
      );
      bar.finish();
      if (opts.json) return json(io, counts);
      io.stdout.write(`imported ${counts.imported}, skipped ${counts.skipped} existing, dropped ${counts.expired} expired\n`);
    });
}
