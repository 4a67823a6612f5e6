// Typed errors of the userfaultfd layer: one class per failure a caller can
// act on, each with a stable UFFD_ERR_* code, the errno and syscall where one
// failed, and advice naming the fix.
import { PostcopyError, type ErrorDetails } from '../errors.ts';

export class UffdError extends PostcopyError {}

/** The device node refused us (EACCES): file permissions. */
export class UffdAccessError extends UffdError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('UFFD_ERR_ACCESS', message, details);
  }
}

/** userfaultfd(2) refused us (EPERM): capability or sysctl. */
export class UffdPermissionError extends UffdError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('UFFD_ERR_PERM', message, details);
  }
}

/** This kernel/platform lacks the path, ioctl or feature asked for. */
export class UffdUnsupportedError extends UffdError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('UFFD_ERR_UNSUPPORTED', message, details);
  }
}

/** The userfaultfd was closed (or closed under a sleeping vCPU). */
export class UffdClosedError extends UffdError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('UFFD_ERR_CLOSED', message, details);
  }
}

/** An address range that is unaligned, empty, unmapped or not ours. */
export class UffdRangeError extends UffdError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('UFFD_ERR_RANGE', message, details);
  }
}

/** The range is already registered with another userfaultfd (EBUSY). */
export class UffdBusyError extends UffdError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('UFFD_ERR_BUSY', message, details);
  }
}

/** The native addon could not be loaded. */
export class UffdAddonError extends UffdError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('UFFD_ERR_ADDON', message, details);
  }
}

/** Any other failed syscall; errno says which. */
export class UffdSyscallError extends UffdError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('UFFD_ERR_SYSCALL', message, details);
  }
}

export const ADVICE = {
  deviceAccess:
    'grant the migration user access to the device: e.g. `chgrp kvm /dev/userfaultfd && chmod 660 /dev/userfaultfd` ' +
    '(or a udev rule), then run as a member of that group',
  syscallPerm:
    'give the process CAP_SYS_PTRACE or set `sysctl vm.unprivileged_userfaultfd=1`; better, use /dev/userfaultfd ' +
    '(path "dev"), which needs only file permissions',
  deviceMissing: 'the kernel has no /dev/userfaultfd (needs Linux 6.1+ with CONFIG_USERFAULTFD); try path "syscall"',
  syscallMissing:
    'this kernel or sandbox has no userfaultfd(2) (CONFIG_USERFAULTFD off, or blocked by seccomp); use path "sim"',
  userModeOnly:
    'kernel faults (a syscall writing from guest RAM) fail with EFAULT under UFFD_USER_MODE_ONLY; ' +
    'use /dev/userfaultfd (path "dev") to have them delivered',
  simKernelFaults:
    'the software backend sees no fault the kernel takes: a device model must call gate.ensure() on guest RAM ' +
    'before handing it to a syscall',
} as const;

interface NativeErrorShape {
  code?: unknown;
  syscall?: unknown;
  message?: unknown;
}

/** Wraps an error thrown by the addon into the typed error for its errno. */
export function fromNative(err: unknown, doing: string): UffdError {
  if (err instanceof UffdError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as NativeErrorShape;
  const errno = typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) ? e.code : undefined;
  const syscall = typeof e.syscall === 'string' ? e.syscall : undefined;
  const message = `${doing}: ${typeof e.message === 'string' ? e.message : String(err)}`;
  const details = { errno, syscall, cause: err };
  if (typeof e.message === 'string' && e.message.startsWith('Usage: ')) return new UffdRangeError(message, details);
  return errnoError(errno, message, details);
}

/** The typed error for an errno name from a failed syscall. */
export function errnoError(errno: string | undefined, message: string, details: ErrorDetails = {}): UffdError {
  const d = { ...details, errno };
  switch (errno) {
    case 'EACCES':
      return new UffdAccessError(message, { advice: ADVICE.deviceAccess, ...d });
    case 'EPERM':
      return new UffdPermissionError(message, { advice: ADVICE.syscallPerm, ...d });
    case 'ENOSYS':
    case 'ENOTTY':
    case 'ENODEV':
    case 'ENXIO':
      return new UffdUnsupportedError(message, d);
    case 'EINVAL':
    case 'ENOENT':
    case 'ENOMEM':
    case 'EFAULT':
      return new UffdRangeError(message, d);
    case 'EBUSY':
      return new UffdBusyError(message, d);
    case 'EBADF':
    case 'ESRCH':
      return new UffdClosedError(message, d);
    default:
      return new UffdSyscallError(message, d);
  }
}
