// Least privilege, as the /dev/userfaultfd patches intend: an unprivileged user
// is refused the root-only device (EACCES) and full userfaultfd(2) (EPERM),
// gets UFFD_USER_MODE_ONLY (user faults only), and gets kernel faults too
// through a device node its group may open, with no capability at all.
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceFacts } from '../../src/uffd/host-access.ts';
import type { PathReport } from '../../src/uffd/probe.ts';
import type { PrivilegeProbeCase } from './fixtures/privilege-probe.ts';

// nobody:nogroup; any uid/gid without capabilities would do.
const UID = 65534;
const GID = 65534;
const SYSCTL = '/proc/sys/vm/unprivileged_userfaultfd';
const root = fileURLToPath(new URL('../../', import.meta.url));
const fixture = 'test/uffd/fixtures/privilege-probe.ts';

function asUser(command: string[]): string[] {
  return ['setpriv', `--reuid=${UID}`, `--regid=${GID}`, '--clear-groups', '--', ...command];
}

// The child sees only these, not vitest's NODE_OPTIONS and the like.
function childEnv(home: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: home, POSTCOPY_LOG: 'silent' };
}

function skipReason(): string | null {
  if (process.platform !== 'linux') return 'userfaultfd is Linux-only';
  if (process.getuid?.() !== 0) return 'not running as root, so cannot become an unprivileged user and mknod a device';
  if (spawnSync('setpriv', ['--version']).error) return 'setpriv (util-linux) is not installed';
  const device = deviceFacts();
  if (!device.exists || !device.isCharacterDevice) return '/dev/userfaultfd does not exist (needs Linux 6.1+)';
  if (device.mode !== null && (parseInt(device.mode, 8) & 0o006) !== 0) {
    return `/dev/userfaultfd is open to every user (mode ${device.mode}), so there is no refusal to test`;
  }
  const needed = [fixture, 'build/Release/uffd.node', 'node_modules/tsx/package.json', 'src/uffd/probe.ts'];
  const [cmd, ...args] = asUser(['node', '-e', `for (const f of ${JSON.stringify(needed)}) require('fs').accessSync(f, 4)`]);
  const readable = spawnSync(cmd!, args, { cwd: root, env: childEnv(os.tmpdir()) });
  if (readable.status !== 0) return `uid ${UID} cannot read the project files under ${root}: ${readable.stderr}`;
  return null;
}

const reason = skipReason();
if (reason) console.log(`least-privilege tests skipped: ${reason}`);

interface ProbeOutput {
  uid: number;
  capSysPtrace: boolean | null;
  results: { label: string; report: PathReport; userFaults: boolean | null }[];
}

describe.skipIf(reason !== null)('least privilege (an unprivileged user, run through setpriv)', () => {
  let dir: string;
  let restoreSysctl: string | null = null;
  let output: ProbeOutput;
  const result = (label: string): ProbeOutput['results'][number] => output.results.find((r) => r.label === label)!;

  beforeAll(async () => {
    // With the sysctl at 1 any user gets kernel faults from userfaultfd(2), so
    // the EPERM refusal exists only at 0, the kernel's default.
    const sysctl = fs.readFileSync(SYSCTL, 'utf8').trim();
    if (sysctl !== '0') {
      console.log(`least-privilege tests: vm.unprivileged_userfaultfd is ${sysctl}; setting 0 for this suite`);
      fs.writeFileSync(SYSCTL, '0');
      restoreSysctl = sysctl;
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-least-privilege-'));
    fs.chmodSync(dir, 0o755);
    const device = deviceFacts();
    const node = path.join(dir, 'uffd');
    const made = spawnSync('mknod', [node, 'c', String(device.major), String(device.minor)], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`mknod ${node} c ${device.major} ${device.minor} failed: ${made.stderr}`);
    fs.chownSync(node, 0, GID);
    fs.chmodSync(node, 0o660);

    const cases: PrivilegeProbeCase[] = [
      { label: 'root-only device', path: 'dev' },
      { label: 'syscall', path: 'syscall' },
      { label: 'user mode only', path: 'syscall-user-mode-only' },
      { label: 'group device', path: 'dev', devicePath: node },
    ];
    const [cmd, ...args] = asUser(['node', '--import', 'tsx', fixture, JSON.stringify(cases)]);
    const { stdout } = await promisify(execFile)(cmd!, args, { cwd: root, env: childEnv(dir) });
    output = JSON.parse(stdout) as ProbeOutput;
  });

  afterAll(() => {
    if (restoreSysctl !== null) fs.writeFileSync(SYSCTL, restoreSysctl);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the child really is unprivileged', () => {
    expect(output.uid).toBe(UID);
    expect(output.capSysPtrace).toBe(false);
  });

  it('is refused /dev/userfaultfd with EACCES, and told to grant access to the device', () => {
    const { report } = result('root-only device');
    expect(report).toMatchObject({ available: false, handlesKernelFaults: false, errno: 'EACCES', code: 'UFFD_ERR_ACCESS' });
    expect(report.advice).toMatch(/chmod/);
  });

  it('is refused full userfaultfd(2) with EPERM, and told about the capability, the sysctl and the device', () => {
    const { report } = result('syscall');
    expect(report).toMatchObject({ available: false, handlesKernelFaults: false, errno: 'EPERM', code: 'UFFD_ERR_PERM' });
    expect(report.advice).toMatch(/CAP_SYS_PTRACE.*unprivileged_userfaultfd.*\/dev\/userfaultfd/);
  });

  it('gets UFFD_USER_MODE_ONLY: user faults are served, a kernel fault fails with EFAULT', () => {
    const { report, userFaults } = result('user mode only');
    expect(report).toMatchObject({ available: true, handlesKernelFaults: false, errno: 'EFAULT' });
    expect(userFaults).toBe(true);
  });

  it('gets everything, kernel faults included, through a device node its group may open', () => {
    const { report, userFaults } = result('group device');
    expect(report).toMatchObject({ available: true, handlesKernelFaults: true, errno: null });
    expect(report.kernelFault).toMatchObject({ faultDelivered: true, written: 4096, bytesMatch: true });
    expect(userFaults).toBe(true);
  });
});
