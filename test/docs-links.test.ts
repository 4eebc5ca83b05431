/**
 * Every relative link of README.md and docs/*.md points at a file or folder of the
 * repository, and every `#anchor` at a heading of its target (GitHub's slugs).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './helpers/pack.js';

const DOCS = ['README.md', ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** The text outside fenced code blocks. */
function unfenced(md: string): string {
  return md.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** The text outside code, fenced or inline (links there are examples, not links). */
function prose(md: string): string {
  return unfenced(md).replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, -1, -2… for repeats. */
function anchorsOf(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of unfenced(md).matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const text = (m[1] as string).replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

interface Link {
  doc: string;
  target: string;
}

function linksOf(doc: string): Link[] {
  const md = prose(readFileSync(join(repoRoot, doc), 'utf8'));
  const links: Link[] = [];
  for (const m of md.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) links.push({ doc, target: m[1] as string });
  for (const m of md.matchAll(/^\[[^\]]+\]:\s*(\S+)/gm)) links.push({ doc, target: m[1] as string });
  return links.filter((l) => !/^[a-z][a-z0-9+.-]*:/i.test(l.target));
}

/** What is wrong with a link, or null when it resolves. */
function broken(l: Link): string | null {
  const [path = '', anchor] = l.target.split('#', 2);
  const file = path === '' ? join(repoRoot, l.doc) : join(repoRoot, dirname(l.doc), decodeURIComponent(path));
  if (!existsSync(file)) return `${l.doc}: ${l.target}: no such file ${relative(repoRoot, file)}`;
  if (anchor === undefined || anchor === '') return null;
  if (statSync(file).isDirectory() || !file.endsWith('.md')) return `${l.doc}: ${l.target}: an anchor into something that is not a Markdown file`;
  if (!anchorsOf(readFileSync(file, 'utf8')).has(decodeURIComponent(anchor).toLowerCase())) {
    return `${l.doc}: ${l.target}: ${relative(repoRoot, file)} has no heading with that anchor`;
  }
  return null;
}

describe('links in README.md and docs/', () => {
  it('slugs headings as GitHub does', () => {
    expect([...anchorsOf('# The two commands\n## A validate on a cache miss\n## Slots\n## Slots\n```\n# not a heading\n```\n')]).toEqual([
      'the-two-commands',
      'a-validate-on-a-cache-miss',
      'slots',
      'slots-1',
    ]);
    expect([...anchorsOf("## The tracker's `sweepInterval`: kept (1 %)")]).toEqual(['the-trackers-sweepinterval-kept-1-']);
  });

  it('every relative link points at an existing file, folder or heading', () => {
    const links = DOCS.flatMap(linksOf);
    // The README links into docs/ and bench/results/: the check sees them.
    expect(links.filter((l) => l.doc === 'README.md').length).toBeGreaterThan(10);
    expect(links.map(broken).filter((b) => b !== null)).toEqual([]);
  });
});
