// Ends every run with one plain line, "Tests: N passed, N failed, N skipped",
// that CI and people read without knowing vitest's own layout. A file whose
// worker died (a native crash in the addon, say) leaves its tests unfinished
// and vitest names no file for it, only "Worker exited unexpectedly": this
// names each such file and counts what it left unfinished as failed.
import { relative } from 'node:path';
import type { Reporter, SerializedError, TestModule, Vitest } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  private root = process.cwd();

  onInit(vitest: Vitest): void {
    this.root = vitest.config.root;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>, errors: ReadonlyArray<SerializedError>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const unfinished: string[] = [];
    for (const mod of modules) {
      let pending = 0;
      for (const t of mod.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else if (state === 'pending') pending++;
        else skipped++;
      }
      const state = mod.state();
      if (state === 'failed' && mod.children.size === 0) failed++;
      if (pending > 0 || state === 'pending' || state === 'queued') {
        failed += Math.max(pending, 1);
        unfinished.push(relative(this.root, mod.moduleId));
      }
    }
    for (const file of unfinished) process.stdout.write(`\nDid not finish: ${file} (its worker exited, or the run was cut short)`);
    const unhandled = errors.length > 0 ? `, ${errors.length} unhandled error${errors.length === 1 ? '' : 's'}` : '';
    process.stdout.write(`\nTests: ${passed} passed, ${failed} failed, ${skipped} skipped${unhandled}\n`);
  }
}
