// `postcopy doctor` as a user runs it: a child process, JSON on stdout. What it
// says about /dev/userfaultfd is checked against access(2) here, not assumed.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { nativeAvailable } from '../../src/uffd/native.ts';
import type { DoctorReport, PathReport } from '../../src/uffd/probe.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

// A failure names how the doctor ended (exit code or signal) and what it
// printed: once in CI it failed after 17.7 s with an empty stderr, which said nothing.
async function postcopy(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const started = performance.now();
  try {
    return await run(process.execPath, ['bin/postcopy.js', ...args], { cwd: root, env: { ...process.env, POSTCOPY_LOG: 'silent' } });
  } catch (err) {
    const e = err as Error & { code?: number | string; signal?: string | null; stdout?: string; stderr?: string };
    const took = ((performance.now() - started) / 1000).toFixed(1);
    throw new Error(
      `postcopy ${args.join(' ')} ended with ${e.signal ? `signal ${e.signal}` : `exit code ${e.code}`} after ${took} s\nstderr: ${e.stderr || '(empty)'}\nstdout: ${(e.stdout ?? '').slice(0, 2000) || '(empty)'}`,
      { cause: err },
    );
  }
}

function deviceReadWrite(): boolean {
  try {
    fs.accessSync('/dev/userfaultfd', fs.constants.R_OK | fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

describe('postcopy doctor', () => {
  let report: DoctorReport;
  const path = (name: string): PathReport => report.paths.find((p) => p.name === name)!;

  beforeAll(async () => {
    report = JSON.parse((await postcopy('doctor', '--json')).stdout) as DoctorReport;
  });

  it('--json lists every access path in auto order with the documented fields', () => {
    expect(report.paths.map((p) => p.name)).toEqual(['dev', 'syscall', 'syscall-user-mode-only', 'sim']);
    for (const p of report.paths) {
      expect(typeof p.available).toBe('boolean');
      expect(typeof p.handlesKernelFaults).toBe('boolean');
      expect(p.errno === null || /^E[A-Z0-9]+$/.test(p.errno)).toBe(true);
      expect(p.advice === null || typeof p.advice === 'string').toBe(true);
    }
    expect(report.auto).toBe(report.paths.find((p) => p.available)?.name ?? null);
  });

  it('dev is available exactly when this process may open the device, and then handles kernel faults', () => {
    const readWrite = deviceReadWrite();
    const opens = readWrite && nativeAvailable();
    expect(path('dev')).toMatchObject({ available: opens, handlesKernelFaults: opens });
    if (!opens) expect(path('dev').code).not.toBeNull();
    expect(report.device.readWrite).toBe(readWrite);
  });

  it('sim is always available and never handles kernel faults', () => {
    expect(path('sim')).toMatchObject({ available: true, handlesKernelFaults: false, errno: null });
    expect(path('sim').kernelFault).toMatchObject({ faultDelivered: false, written: 4096 });
  });

  it('UFFD_USER_MODE_ONLY, where it opens, reports the EFAULT a kernel fault gets', () => {
    const p = path('syscall-user-mode-only');
    if (p.available) expect(p).toMatchObject({ handlesKernelFaults: false, errno: 'EFAULT' });
    else expect(p.errno).not.toBeNull();
  });

  it('the default output is for people: every path, a mark and the path auto takes', async () => {
    const { stdout } = await postcopy('doctor');
    for (const name of ['dev', 'syscall', 'syscall-user-mode-only', 'sim']) {
      expect(stdout).toMatch(new RegExp(`^  [✓~✗] ${name} `, 'm'));
    }
    expect(stdout).toMatch(/^auto takes: \S+/m);
    expect(() => JSON.parse(stdout)).toThrow();
  });
});
