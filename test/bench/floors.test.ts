// The C floors of bench:migration build and measure something sane on a small
// region, so a broken floor shows up here rather than as a flattering ratio.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BENCH = fileURLToPath(new URL('../../bench/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'postcopy-floors-'));
const hasCc = spawnSync('cc', ['--version']).status === 0;

function build(name: string): string {
  const out = join(dir, name);
  execFileSync('cc', ['-O2', '-pthread', '-Wall', '-Werror', '-o', out, join(BENCH, `${name}.c`)]);
  return out;
}

describe.skipIf(!hasCc)('bench floors (C)', () => {
  let bandwidth: string;
  let remoteFault: string;
  beforeAll(() => {
    bandwidth = build('tcp-bandwidth');
    remoteFault = build('remote-fault');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('tcp-bandwidth moves every byte and reports a rate', () => {
    const r = JSON.parse(execFileSync(bandwidth, ['--bytes', String(64 << 20), '--rounds', '2']).toString());
    expect(r.rounds).toBe(2);
    expect(r.gbPerSecond).toHaveLength(2);
    expect(r.medianGBps).toBeGreaterThan(0);
    expect(r.bestGBps).toBeGreaterThanOrEqual(r.medianGBps);
  });

  it('remote-fault places every page with the right contents while timing faults', (ctx) => {
    const run = spawnSync(remoteFault, ['--region', String(64 << 20), '--wss', String(32 << 20)], { timeout: 60_000 });
    if (run.status === 2 && /no userfaultfd/.test(run.stderr.toString())) ctx.skip();
    expect(run.stderr.toString()).toBe('');
    expect(run.status).toBe(0);
    const r = JSON.parse(run.stdout.toString());
    expect(r.verified).toBe(true);
    expect(r.pagesPresent).toBe(16384);
    expect(r.faults).toBeGreaterThan(0);
    expect(r.latencyUs.p50).toBeGreaterThan(0);
    expect(r.latencyUs.p99).toBeGreaterThanOrEqual(r.latencyUs.p50);
    expect(r.serviceUs.p50).toBeGreaterThan(0);
  });

  it('remote-fault without the push stops after --max-faults', (ctx) => {
    const run = spawnSync(remoteFault, ['--region', String(64 << 20), '--wss', String(32 << 20), '--push', '0', '--max-faults', '300'], { timeout: 60_000 });
    if (run.status === 2 && /no userfaultfd/.test(run.stderr.toString())) ctx.skip();
    expect(run.status).toBe(0);
    const r = JSON.parse(run.stdout.toString());
    expect(r.push).toBe(false);
    expect(r.faults).toBe(300);
    expect(r.pagesPresent).toBe(300);
  });
});
