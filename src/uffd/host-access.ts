// The host facts that decide which userfaultfd access paths work: the kernel,
// who we are, the device node's owner and mode, vm.unprivileged_userfaultfd,
// and CAP_SYS_PTRACE. Read from the filesystem only; nothing is opened here.
import fs from 'node:fs';
import os from 'node:os';
import { DEFAULT_DEVICE } from './open.ts';

// linux/capability.h
const CAP_SYS_PTRACE = 19n;

export interface UserFacts {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  readonly name: string | null;
}

export interface DeviceFacts {
  readonly path: string;
  readonly exists: boolean;
  /** A character device (what USERFAULTFD_IOC_NEW needs), false for anything else. */
  readonly isCharacterDevice: boolean;
  readonly major: number | null;
  readonly minor: number | null;
  /** Permission bits in octal, e.g. "0600". */
  readonly mode: string | null;
  readonly owner: string | null;
  readonly group: string | null;
  readonly uid: number | null;
  readonly gid: number | null;
  /** access(2) R_OK|W_OK for this process: what open(O_RDWR) will be judged by. */
  readonly readWrite: boolean;
}

export interface HostFacts {
  readonly platform: NodeJS.Platform;
  readonly kernel: string;
  readonly user: UserFacts;
  readonly device: DeviceFacts;
  /** vm.unprivileged_userfaultfd (0 or 1); null when the sysctl does not exist. */
  readonly unprivilegedUserfaultfd: number | null;
  /** CAP_SYS_PTRACE in the effective set; null when /proc/self/status is unreadable. */
  readonly capSysPtrace: boolean | null;
}

function readText(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** name by numeric id from an /etc/passwd- or /etc/group-shaped file. */
function namesById(path: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of (readText(path) ?? '').split('\n')) {
    const [name, , id] = line.split(':');
    if (name && id !== undefined && /^\d+$/.test(id) && !names.has(Number(id))) names.set(Number(id), name);
  }
  return names;
}

/** Linux's dev_t encoding (glibc's gnu_dev_major/minor). */
export function deviceNumbers(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

export function deviceFacts(path: string = DEFAULT_DEVICE): DeviceFacts {
  let stat: fs.BigIntStats;
  try {
    stat = fs.statSync(path, { bigint: true });
  } catch {
    return {
      path,
      exists: false,
      isCharacterDevice: false,
      major: null,
      minor: null,
      mode: null,
      owner: null,
      group: null,
      uid: null,
      gid: null,
      readWrite: false,
    };
  }
  let readWrite = true;
  try {
    fs.accessSync(path, fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    readWrite = false;
  }
  const uid = Number(stat.uid);
  const gid = Number(stat.gid);
  const { major, minor } = deviceNumbers(stat.rdev);
  return {
    path,
    exists: true,
    isCharacterDevice: stat.isCharacterDevice(),
    major,
    minor,
    mode: `0${(Number(stat.mode) & 0o7777).toString(8).padStart(3, '0')}`,
    owner: namesById('/etc/passwd').get(uid) ?? null,
    group: namesById('/etc/group').get(gid) ?? null,
    uid,
    gid,
    readWrite,
  };
}

function capSysPtrace(): boolean | null {
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(readText('/proc/self/status') ?? '');
  if (!effective) return null;
  return ((BigInt(`0x${effective[1]}`) >> CAP_SYS_PTRACE) & 1n) === 1n;
}

function unprivilegedUserfaultfd(): number | null {
  const text = readText('/proc/sys/vm/unprivileged_userfaultfd');
  return text === null ? null : Number(text.trim());
}

function userFacts(): UserFacts {
  const uid = process.getuid?.() ?? -1;
  return {
    uid,
    gid: process.getgid?.() ?? -1,
    groups: process.getgroups?.() ?? [],
    name: namesById('/etc/passwd').get(uid) ?? null,
  };
}

export function hostFacts(devicePath: string = DEFAULT_DEVICE): HostFacts {
  return {
    platform: process.platform,
    kernel: os.release(),
    user: userFacts(),
    device: deviceFacts(devicePath),
    unprivilegedUserfaultfd: unprivilegedUserfaultfd(),
    capSysPtrace: capSysPtrace(),
  };
}
