/**
 * Counts the commits in a SQLite WAL file, for tests that must tell one transaction from
 * several. SQLite's `PRAGMA data_version` cannot: it moves once per look, however many commits
 * came in between. Each WAL frame has a 24-byte header whose bytes 4–7 hold the database size
 * after a commit (non-zero on the last frame of each commit only) and whose salts match the
 * file header's while the frame belongs to the current WAL (older frames left after a reset do
 * not). Format: https://www.sqlite.org/fileformat.html#the_write_ahead_log
 */
import { existsSync, readFileSync } from 'node:fs';

export function walCommits(dbPath: string): number {
  const path = `${dbPath}-wal`;
  if (!existsSync(path)) return 0;
  const wal = readFileSync(path);
  if (wal.length < 32) return 0;
  const pageSize = wal.readUInt32BE(8);
  const salt1 = wal.readUInt32BE(16);
  const salt2 = wal.readUInt32BE(20);
  let commits = 0;
  for (let at = 32; at + 24 + pageSize <= wal.length; at += 24 + pageSize) {
    if (wal.readUInt32BE(at + 8) !== salt1 || wal.readUInt32BE(at + 12) !== salt2) break;
    if (wal.readUInt32BE(at + 4) !== 0) commits++;
  }
  return commits;
}
