import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('postcopy command', () => {
  it('prints its version from package.json', () => {
    const out = execFileSync(process.execPath, ['bin/postcopy.js', '--version'], { encoding: 'utf8' });
    expect(out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
