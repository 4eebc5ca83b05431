/**
 * Prints one plain closing line "N passed, N failed, N skipped" and, under CI=true,
 * fails the run when any test was skipped: in CI every test (Redis, Chromium) must run.
 */
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    const skipped: string[] = [];
    for (const mod of modules) {
      for (const test of mod.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else if (state === 'skipped') skipped.push(`${mod.moduleId.replace(`${process.cwd()}/`, '')} > ${test.fullName}`);
      }
    }
    if (process.env.CI === 'true' && skipped.length > 0) {
      console.error(`\nCI=true and ${skipped.length} test(s) were skipped; in CI every test must run:`);
      for (const name of skipped) console.error(`  - ${name}`);
      failed += skipped.length;
      process.exitCode = 1;
    }
    console.log(`\n${passed} passed, ${failed} failed, ${skipped.length} skipped`);
  }
}
