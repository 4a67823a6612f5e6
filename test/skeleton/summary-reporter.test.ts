import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const suite = fileURLToPath(new URL('./fixtures/crashing-suite/', import.meta.url));
const vitest = fileURLToPath(new URL('../../node_modules/vitest/vitest.mjs', import.meta.url));

describe('the summary line', () => {
  it('names a file whose worker died and counts its unfinished tests as failed', () => {
    const run = spawnSync(process.execPath, [vitest, 'run', '--root', suite], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
      timeout: 60_000,
    });
    expect(run.status).toBe(1);
    expect(run.stdout).toContain('Did not finish: crashes.fixture.ts');
    expect(run.stdout).not.toContain('Did not finish: passes.fixture.ts');
    expect(run.stdout).toMatch(/^Tests: 1 passed, 2 failed, 0 skipped, 1 unhandled error$/m);
  });
});
