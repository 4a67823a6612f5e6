// bench:migration's fault latency comes from bench/fault-trace.ts: here it
// must see the C floor's faults one for one and time each from the touch.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { percentilesOf, startFaultTrace } from '../../bench/fault-trace.ts';

const FAULTS = 300;

describe('percentilesOf', () => {
  it('takes the nearest rank, as the C floors do', () => {
    const values = Array.from({ length: 101 }, (_, i) => 100 - i);
    expect(percentilesOf(values)).toEqual({ p50: 50, p90: 90, p99: 99, max: 100 });
    expect(percentilesOf([])).toEqual({ p50: 0, p90: 0, p99: 0, max: 0 });
  });
});

const trace = await startFaultTrace();
const reason = 'unavailable' in trace ? trace.unavailable : spawnSync('cc', ['--version']).status === 0 ? null : 'no C compiler';
if (reason) console.log(`fault-trace test skipped: ${reason}`);
else if (!('unavailable' in trace)) await trace.stop();

describe.skipIf(reason !== null)('fault-trace on the C floor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postcopy-trace-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('times every remote fault of the toucher from the touch to running again', async (ctx) => {
    const bin = join(dir, 'remote-fault');
    execFileSync('cc', ['-O2', '-pthread', '-o', bin, fileURLToPath(new URL('../../bench/remote-fault.c', import.meta.url))]);
    const started = await startFaultTrace();
    if ('unavailable' in started) throw new Error(started.unavailable);
    const run = spawnSync(bin, ['--region', String(64 << 20), '--wss', String(32 << 20), '--push', '0', '--max-faults', String(FAULTS)], { timeout: 60_000 });
    const processes = await started.stop();
    if (run.status === 2 && /no userfaultfd/.test(run.stderr.toString())) ctx.skip();
    expect(run.status).toBe(0);
    const c = processes.filter((p) => p.kind === 'c');
    expect(c).toHaveLength(1);
    // One userfault per page and nothing else: the toucher's other sleeps are not woken by a page placer.
    expect(c[0].faults).toHaveLength(FAULTS);
    for (const f of c[0].faults) {
      expect(f.wokenUs).toBeGreaterThan(0);
      expect(f.runUs).toBeGreaterThanOrEqual(0);
      expect(f.totalUs).toBeCloseTo(f.wokenUs + f.runUs, 3);
    }
  });
});
