import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };

/** Every import specifier in the files under `dir`. */
function importsUnder(dir: string): Set<string> {
  const out = new Set<string>();
  for (const entry of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !/\.(ts|mjs|js)$/.test(entry.name)) continue;
    const text = readFileSync(join(entry.parentPath, entry.name), 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|require(?:\.resolve)?\s*\(\s*)['"]([^'"]+)['"]/g)) out.add(m[1] as string);
  }
  return out;
}

const packageOf = (spec: string) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string));

it('installs for users only what the shipped code imports', () => {
  const shipped = new Set([...importsUnder('src')].map(packageOf));
  const unused = Object.keys(pkg.dependencies).filter((d) => !shipped.has(d));
  expect(unused).toEqual([]);
});
