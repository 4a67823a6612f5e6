// Worker: hands guest RAM to write(2), so the kernel (copy_from_user), not this
// thread, is what touches the page: the fault a DMA-doing device takes. A
// missing page makes the syscall sleep until the page is placed (a userfaultfd
// that handles kernel faults) or fail with EFAULT (UFFD_USER_MODE_ONLY).
import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { errnoOf } from '../errors.ts';
import { workerPayload } from '../worker.ts';
import { attachRegion } from './attach.ts';
import type { RegionHandle } from './region.ts';

export interface KernelFaultWriterData {
  readonly handle: RegionHandle;
  readonly offset: number;
  readonly length: number;
  /** An fd of this process, open for writing: fds are shared by all threads. */
  readonly fd: number;
}

export interface KernelFaultWriterResult {
  /** What write(2) returned; null when it failed. */
  readonly written: number | null;
  readonly errno: string | null;
  /** The serving userfaultfd closed with the page missing, so the bytes written are zeros. */
  readonly aborted: boolean;
}

const { handle, offset, length, fd } = workerPayload<KernelFaultWriterData>();
const region = attachRegion(handle);
let written: number | null = null;
let errno: string | null = null;
try {
  // No gate.ensure() on purpose: a syscall does not pass through the sim gate.
  written = fs.writeSync(fd, new Uint8Array(region.buffer, offset, length));
} catch (err) {
  errno = errnoOf(err) ?? String(err);
}
parentPort!.postMessage({ written, errno, aborted: region.aborted() } satisfies KernelFaultWriterResult);
