import { existsSync, readdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../../util/logger.js';
import { RECORD_FIELDS, type SessionRecord } from '../../core/session.js';

const FORMAT = 'lapse-snapshot';
const VERSION = 1;
const CHUNK = 2000;

/** What a write snapshots: read when the write starts, so it is never older than the call. */
export type SnapshotSource = () => { fence: number; records: Iterable<SessionRecord> };

/** Whether a process with this pid is running (EPERM: it is, but is not ours). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A snapshot file of the memory backend: a header line, one JSON array per session and
 * an end line with the count. Written to a temp file, fsynced, then renamed over the old
 * one, so a crash at any moment leaves either the previous snapshot or the new one.
 */
export class SnapshotFile {
  private writing: Promise<void> | undefined;
  /** The one write queued behind the one in flight, shared by every caller meanwhile. */
  private next: Promise<void> | undefined;

  constructor(
    readonly path: string,
    private readonly logger: Logger,
    /** Told the outcome of every write, once per write (not per caller): undefined on success. */
    private readonly written: (err: unknown) => void,
  ) {}

  /** True while a write is in flight. */
  get busy(): boolean {
    return this.writing !== undefined;
  }

  /**
   * Deletes `<path>.tmp-<pid>` files a killed process left behind (its pid no longer runs,
   * or is ours now: pids are reused); a running process's temp file is its write in flight.
   */
  removeStaleTemps(): void {
    const prefix = `${basename(this.path)}.tmp-`;
    let names: string[];
    try {
      names = readdirSync(dirname(this.path));
    } catch {
      return; // no folder yet: nothing left behind
    }
    const removed: string[] = [];
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const pid = Number(name.slice(prefix.length));
      if (!Number.isSafeInteger(pid) || pid <= 0 || (pid !== process.pid && alive(pid))) continue;
      unlinkSync(join(dirname(this.path), name));
      removed.push(name);
    }
    if (removed.length > 0) this.logger.warn({ path: this.path, removed }, 'removed snapshot temp files left by a killed process');
  }

  /** The snapshot's content, null when there is none. A corrupt file is moved aside, never deleted. */
  read(): { fence: number; records: SessionRecord[] } | null {
    if (!existsSync(this.path)) return null;
    try {
      return parse(readFileSync(this.path, 'utf8'));
    } catch (err) {
      const aside = `${this.path}.corrupt-${Date.now()}`;
      renameSync(this.path, aside);
      this.logger.error({ path: this.path, movedTo: aside, err }, 'corrupt snapshot moved aside; starting empty');
      return null;
    }
  }

  /**
   * Writes what `source()` gives as the new snapshot. During a write, a call waits for it
   * and then for one more write (of the state at that time), shared by every call meanwhile:
   * writes never overlap and never pile up.
   */
  write(source: SnapshotSource): Promise<void> {
    if (!this.writing) return this.start(source);
    this.next ??= this.writing
      .catch(() => {})
      .then(() => {
        this.next = undefined;
        return this.start(source);
      });
    return this.next;
  }

  private start(source: SnapshotSource): Promise<void> {
    const { fence, records } = source();
    const rows = Array.from(records, (r) => RECORD_FIELDS.map((f) => r[f]));
    const run = this.writeFile(fence, rows).then(
      () => this.written(undefined),
      (err: unknown) => {
        this.written(err);
        throw err;
      },
    );
    const tracked = run.finally(() => {
      if (this.writing === tracked) this.writing = undefined;
    });
    this.writing = tracked;
    return tracked;
  }

  private async writeFile(fence: number, rows: unknown[][]): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp-${process.pid}`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      const header = { format: FORMAT, version: VERSION, fence, count: rows.length, fields: RECORD_FIELDS, writtenAt: Date.now() };
      await fh.write(`${JSON.stringify(header)}\n`);
      for (let i = 0; i < rows.length; i += CHUNK) {
        let chunk = '';
        for (const row of rows.slice(i, i + CHUNK)) chunk += `${JSON.stringify(row)}\n`;
        await fh.write(chunk);
      }
      await fh.write(`${JSON.stringify({ end: rows.length })}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    const dir = await open(dirname(this.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

function parse(text: string): { fence: number; records: SessionRecord[] } {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const header = JSON.parse(lines[0] ?? '') as { format?: string; version?: number; fence?: number; count?: number };
  if (header.format !== FORMAT || header.version !== VERSION || typeof header.fence !== 'number') {
    throw new Error('not a Lapse snapshot (bad header)');
  }
  const end = JSON.parse(lines.at(-1) ?? '') as { end?: number };
  if (end.end !== header.count || lines.length !== (header.count ?? -1) + 2) throw new Error('snapshot is truncated');
  const records: SessionRecord[] = [];
  for (let i = 1; i < lines.length - 1; i++) {
    const row = JSON.parse(lines[i] as string) as unknown[];
    if (!Array.isArray(row) || row.length !== RECORD_FIELDS.length) throw new Error(`bad record on line ${i + 1}`);
    const rec = {} as Record<string, unknown>;
    RECORD_FIELDS.forEach((f, k) => {
      rec[f] = row[k];
    });
    if (typeof rec.id !== 'string' || typeof rec.expiresAt !== 'number' || typeof rec.data !== 'string') {
      throw new Error(`bad record on line ${i + 1}`);
    }
    records.push(rec as unknown as SessionRecord);
  }
  return { fence: header.fence, records };
}
