// bench:migration's fault latency comes from bench/fault-trace.ts: here it
// must see the C floor's faults and time each from the touch.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { bucketValue, percentilesOfBuckets, startFaultTrace } from '../../bench/fault-trace.ts';

const FAULTS = 300;

describe('fault-trace histograms', () => {
  it('read each bucket as its midpoint: 0.1 µs wide below 100 µs, 1 µs to 1 ms, 10 µs to 10 ms, 500 µs to 100 ms', () => {
    expect(bucketValue(0, 9)).toBeCloseTo(0.05, 9);
    expect(bucketValue(195, 99)).toBeCloseTo(19.55, 9);
    expect(bucketValue(999, 999)).toBeCloseTo(99.95, 9);
    expect(bucketValue(1000, 9999)).toBe(100.5);
    expect(bucketValue(1899, 9999)).toBe(999.5);
    expect(bucketValue(1900, 99999)).toBe(1005);
    expect(bucketValue(2799, 99999)).toBe(9995);
    expect(bucketValue(2800, 99999)).toBe(10250);
    expect(bucketValue(2979, 99999)).toBe(99750);
    expect(bucketValue(2980, 123456)).toBe(123456);
  });

  it('take nearest-rank percentiles over the counts, never above the exact max', () => {
    // 98 faults in [10.0, 10.1) µs, one in [1000, 1010), one at 20 ms exactly.
    const counts = new Map([[100, 98], [1900, 1], [2820, 1]]);
    expect(percentilesOfBuckets(counts, 20_000)).toEqual({ p50: 10.05, p90: 10.05, p99: 1005, max: 20_000 });
    expect(percentilesOfBuckets(new Map([[100, 1]]), 10.02)).toEqual({ p50: 10.02, p90: 10.02, p99: 10.02, max: 10.02 });
    expect(percentilesOfBuckets(new Map(), 0)).toEqual({ p50: 0, p90: 0, p99: 0, max: 0 });
  });
});

const trace = await startFaultTrace();
const reason = 'unavailable' in trace ? trace.unavailable : spawnSync('cc', ['--version']).status === 0 ? null : 'no C compiler';
if (reason) console.log(`fault-trace test skipped: ${reason}`);
else if (!('unavailable' in trace)) await trace.stop();

describe.skipIf(reason !== null)('fault-trace on the C floor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postcopy-trace-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('times the remote faults of the toucher from the touch to running again', async (ctx) => {
    const bin = join(dir, 'remote-fault');
    execFileSync('cc', ['-O2', '-pthread', '-o', bin, fileURLToPath(new URL('../../bench/remote-fault.c', import.meta.url))]);
    const started = await startFaultTrace();
    if ('unavailable' in started) throw new Error(started.unavailable);
    const run = spawnSync(bin, ['--region', String(64 << 20), '--wss', String(32 << 20), '--push', '0', '--max-faults', String(FAULTS)], { timeout: 60_000 });
    const processes = await started.stop();
    if (run.status === 2 && /no userfaultfd/.test(run.stderr.toString())) ctx.skip();
    expect(run.status).toBe(0);
    // Other test files may run C floors and migrations meanwhile: the
    // destination is the process spawned here (its source is a fork).
    const c = processes.filter((p) => p.pid === run.pid);
    expect(c).toHaveLength(1);
    expect(c[0].kind).toBe('c');
    // Remote faults only: the toucher's other sleeps are not woken by a page
    // placer. A fault whose page lands before the toucher sleeps is not one.
    expect(c[0].faults).toBeLessThanOrEqual(FAULTS);
    expect(c[0].faults).toBeGreaterThanOrEqual(FAULTS - 3);
    const { latencyUs, runUs } = c[0];
    expect(latencyUs.p50).toBeGreaterThan(0);
    expect(latencyUs.p50).toBeLessThanOrEqual(latencyUs.p90);
    expect(latencyUs.p90).toBeLessThanOrEqual(latencyUs.p99);
    expect(latencyUs.p99).toBeLessThanOrEqual(latencyUs.max);
    // The wait for a core is a part of each fault.
    expect(runUs.max).toBeLessThanOrEqual(latencyUs.max);
    expect(runUs.p50).toBeLessThan(latencyUs.p50);
  });
});
