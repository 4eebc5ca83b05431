import { existsSync, readFileSync, renameSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../logger.js';
import { RECORD_FIELDS, type SessionRecord } from '../session.js';

const FORMAT = 'lapse-snapshot';
const VERSION = 1;
const CHUNK = 2000;

/**
 * A snapshot file of the memory backend: a header line, one JSON array per session and
 * an end line with the count. Written to a temp file, fsynced, then renamed over the old
 * one, so a crash at any moment leaves either the previous snapshot or the new one.
 */
export class SnapshotFile {
  private writing: Promise<void> | undefined;
  /** The newest state asked for while a write was in flight. */
  private pending: { fence: number; rows: unknown[][] } | undefined;
  /** The newest state asked for while a write was in flight. */
  constructor(
    readonly path: string,
    private readonly logger: Logger,
  ) {}

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

  /** Writes `records` (taken now) as the new snapshot; concurrent calls are coalesced. */
  write(fence: number, records: Iterable<SessionRecord>): Promise<void> {
    const rows = Array.from(records, (r) => RECORD_FIELDS.map((f) => r[f]));
    if (this.writing) {
      // A write is in flight; queue one more with the newest state.
      this.pending = { fence, rows };
      return this.writing;
    }
    this.writing = this.run(fence, rows).finally(() => {
      this.writing = undefined;
    });
    return this.writing;
  }

  private async run(fence: number, rows: unknown[][]): Promise<void> {
    for (;;) {
      await this.writeFile(fence, rows);
      if (!this.pending) return;
      ({ fence, rows } = this.pending);
      this.pending = undefined;
    }
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
