// Copies non-TypeScript assets (Lua scripts, SQL) next to the compiled files in dist/.
import { cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const pairs = [['src/backends/redis', 'dist/backends/redis', '.lua']];
for (const [from, to, ext] of pairs) {
  if (!existsSync(from)) continue;
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(from)) if (f.endsWith(ext)) cpSync(join(from, f), join(to, f));
}
