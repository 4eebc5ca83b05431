/**
 * Runs the benchmarks one after another: `npm run bench` (all) or `npm run bench -- core sqlite`.
 * Each writes its figures to bench/results/.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const all = ['core', 'sqlite', 'redis', 'postgres', 'http', 'socketio'];
const chosen = process.argv.slice(2).length > 0 ? process.argv.slice(2) : all;
let failed = 0;
for (const name of chosen) {
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  if (!existsSync(file)) {
    console.error(`bench/${name}.ts does not exist`);
    failed++;
    continue;
  }
  console.error(`\n== bench ${name} ==`);
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', file], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
