// The benchmarks refuse flags they cannot honour before measuring anything,
// naming the flag and what to do, instead of printing figures of a wrong run.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

function bench(script: string, args: string[]): { status: number | null; stderr: string; stdout: string } {
  const path = fileURLToPath(new URL(`../../bench/${script}`, import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', path, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

describe('benchmark flags', () => {
  it.each([
    ['fault-path.ts', ['--faults', '100000'], /--faults 100000 is more than the 65536 pages of the --region; raise --region or lower --faults/],
    ['fault-path.ts', ['--region', '5000'], /--region 5000 is not a whole number of 4096-byte pages/],
    ['fault-roundtrip.ts', ['lots'], /value 'lots' is invalid for argument 'touches'. expected an integer from 1 to 261144/],
    ['fault-roundtrip.ts', ['1000', '0'], /value '0' is invalid for argument 'rounds'/],
    ['migration.ts', ['--ram', '1G', '--wss', '2G'], /--wss 2147483648 is larger than --ram 1073741824/],
  ])('%s %j is refused with a message naming the flag', (script, args, message) => {
    const r = bench(script, args);
    expect(r.stderr).toMatch(message);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
  });
});
