// Obtaining a userfaultfd: the access-path policy. `auto` tries, in order,
// /dev/userfaultfd, userfaultfd(2), userfaultfd(2) with UFFD_USER_MODE_ONLY,
// then the software backend, and logs why each earlier path was refused.
import { logger, type Logger } from '../log.ts';
import {
  ADVICE,
  UffdError,
  UffdUnsupportedError,
  fromNative,
  errnoError,
  UffdAccessError,
  UffdPermissionError,
} from './errors.ts';
import { KernelUserfaultfd } from './kernel.ts';
import { loadNative, type NativeAddon } from './native.ts';
import { SimUserfaultfd } from './sim.ts';
import { ACCESS_PATHS, type AccessPath, type UffdFeatures, type Userfaultfd } from './userfaultfd.ts';

export const DEFAULT_DEVICE = '/dev/userfaultfd';

export interface OpenOptions {
  /** Which access path; 'auto' (default) takes the first that works. */
  path?: AccessPath | 'auto';
  /** The device node for path 'dev' (tests use a private mknod'd node). */
  devicePath?: string;
  /**
   * Report MADV_DONTNEED / munmap of registered ranges as events. Off by
   * default: the kernel then blocks the thread doing the madvise until the
   * event is read, so the thread serving the fd must never do it itself.
   */
  events?: { remove?: boolean; unmap?: boolean };
  logger?: Logger;
}

// Features each kernel path offers, learnt once per process.
const offered = new Map<AccessPath, number>();

function createFd(native: NativeAddon, path: AccessPath, devicePath: string): number {
  const c = native.constants;
  const flags = c.O_CLOEXEC | c.O_NONBLOCK;
  try {
    if (path === 'dev') return native.openDevice(devicePath, flags);
    return native.openSyscall(path === 'syscall-user-mode-only' ? flags | c.UFFD_USER_MODE_ONLY : flags);
  } catch (err) {
    throw refusal(err, path, devicePath);
  }
}

function refusal(err: unknown, path: AccessPath, devicePath: string): UffdError {
  const what = path === 'dev' ? `opening ${devicePath}` : `userfaultfd(2) for path "${path}"`;
  const e = fromNative(err, what);
  const details = { errno: e.errno, syscall: e.syscall, cause: err };
  if (path === 'dev') {
    if (e.errno === 'EACCES' || e.errno === 'EPERM') {
      return new UffdAccessError(e.message, { ...details, advice: ADVICE.deviceAccess });
    }
    if (e.errno === 'ENOENT' || e.errno === 'ENOTTY' || e.errno === 'ENODEV' || e.errno === 'ENXIO') {
      return new UffdUnsupportedError(e.message, { ...details, advice: ADVICE.deviceMissing });
    }
  } else {
    if (e.errno === 'EPERM') return new UffdPermissionError(e.message, { ...details, advice: ADVICE.syscallPerm });
    if (e.errno === 'ENOSYS' || e.errno === 'EINVAL') {
      return new UffdUnsupportedError(e.message, { ...details, advice: ADVICE.syscallMissing });
    }
  }
  return e;
}

function closeQuietly(native: NativeAddon, fd: number): void {
  try {
    native.close(fd);
  } catch {
    // The fd is gone either way; the original failure is what matters.
  }
}

function openKernel(path: AccessPath, options: OpenOptions, log: Logger): Userfaultfd {
  let native: NativeAddon;
  try {
    native = loadNative();
  } catch (err) {
    throw new UffdUnsupportedError(`path "${path}" needs the native addon`, { cause: err, advice: ADVICE.syscallMissing });
  }
  const c = native.constants;
  const devicePath = options.devicePath ?? DEFAULT_DEVICE;
  const required =
    (options.events?.remove ? c.UFFD_FEATURE_EVENT_REMOVE : 0) | (options.events?.unmap ? c.UFFD_FEATURE_EVENT_UNMAP : 0);
  const optional = c.UFFD_FEATURE_THREAD_ID | c.UFFD_FEATURE_PAGEFAULT_FLAG_WP;
  const known = offered.get(path);
  let wanted = required | (known === undefined ? optional : optional & known);
  if (known !== undefined && (required & known) !== required) {
    throw new UffdUnsupportedError(`path "${path}": the kernel does not offer the requested remove/unmap events`);
  }

  let fd = createFd(native, path, devicePath);
  let api: { features: number; ioctls: bigint };
  try {
    api = native.api(fd, wanted);
  } catch (err) {
    closeQuietly(native, fd);
    if (known !== undefined || (err as { code?: string }).code !== 'EINVAL') throw fromNative(err, 'UFFDIO_API');
    // Some optional feature is missing: learn what is offered on a scratch fd
    // (UFFDIO_API succeeds only once per fd), then ask for what exists.
    const probe = createFd(native, path, devicePath);
    const available = native.api(probe, 0).features;
    closeQuietly(native, probe);
    offered.set(path, available);
    if ((required & available) !== required) {
      throw new UffdUnsupportedError(`path "${path}": the kernel does not offer the requested remove/unmap events`);
    }
    wanted = required | (optional & available);
    fd = createFd(native, path, devicePath);
    try {
      api = native.api(fd, wanted);
    } catch (err2) {
      closeQuietly(native, fd);
      throw fromNative(err2, 'UFFDIO_API');
    }
  }
  offered.set(path, api.features);
  const features: UffdFeatures = {
    threadId: (wanted & c.UFFD_FEATURE_THREAD_ID) !== 0,
    writeProtect: (wanted & c.UFFD_FEATURE_PAGEFAULT_FLAG_WP) !== 0,
    remove: (wanted & c.UFFD_FEATURE_EVENT_REMOVE) !== 0,
    unmap: (wanted & c.UFFD_FEATURE_EVENT_UNMAP) !== 0,
    bits: wanted,
    available: api.features,
  };
  try {
    return new KernelUserfaultfd(fd, path, features, log);
  } catch (err) {
    closeQuietly(native, fd);
    throw fromNative(err, 'watching the userfaultfd');
  }
}

/** Opens one access path; a refusal is a typed error naming the errno and the fix. */
export function openPath(path: AccessPath, options: OpenOptions = {}): Userfaultfd {
  const log = (options.logger ?? logger()).child({ module: 'uffd', path });
  if (path === 'sim') return new SimUserfaultfd(log);
  return openKernel(path, options, log);
}

/** A userfaultfd by `options.path`, or for 'auto' the first access path that works. */
export function openUserfaultfd(options: OpenOptions = {}): Userfaultfd {
  const choice = options.path ?? 'auto';
  if (choice !== 'auto') return openPath(choice, options);
  const log = options.logger ?? logger();
  const refused: string[] = [];
  for (const path of ACCESS_PATHS) {
    try {
      const uffd = openPath(path, options);
      if (refused.length > 0) log.info({ path, refused }, 'userfaultfd: using a fallback access path');
      return uffd;
    } catch (err) {
      if (!(err instanceof UffdError)) throw err;
      refused.push(`${path}: ${err.errno ?? err.code}`);
      log.debug({ path, code: err.code, errno: err.errno, advice: err.advice }, 'userfaultfd access path refused');
    }
  }
  throw errnoError(undefined, `no userfaultfd access path works here (${refused.join('; ')})`);
}
