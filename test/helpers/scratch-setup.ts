import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

/**
 * Global setup: one folder per vitest run, shared by the test files that install the packed
 * packages into scratch apps (test/helpers/scratch.ts), removed when the run ends. Cheap: the
 * packing and installs happen only when a test file asks for them.
 */
export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'lapse-scratch-run-'));
  project.provide('lapseScratchRoot', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
