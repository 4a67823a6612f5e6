// Whether a userfaultfd handles faults taken inside the kernel, tried for real:
// a worker passes a missing registered page to write(2) on a file while this
// thread serves the fault. The answer is what happened, not what the access
// path is documented to do.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startWorker, workerResult } from '../worker.ts';
import type { KernelFaultWriterData, KernelFaultWriterResult } from './kernel-fault-writer.ts';
import { PAGE_SIZE } from './pages.ts';
import { allocateRegion } from './region.ts';
import type { UffdEvent, Userfaultfd } from './userfaultfd.ts';

// Only a guard against a kernel that never wakes the writer; a trial that
// works finishes in well under this.
const DEFAULT_TIMEOUT_MS = 15_000;

export interface KernelFaultOutcome {
  /** A pagefault event for the page arrived while the worker was inside write(2). */
  readonly faultDelivered: boolean;
  /** What write(2) returned; null when it failed. */
  readonly written: number | null;
  /** Why write(2) failed (EFAULT under UFFD_USER_MODE_ONLY); null when it did not. */
  readonly errno: string | null;
  /** The file holds exactly the page this thread placed. */
  readonly bytesMatch: boolean;
  /** The guard expired and the page was unregistered to release the writer. */
  readonly timedOut: boolean;
  /** Fault delivered, write completed in full, file holds the placed bytes. */
  readonly handled: boolean;
}

export interface KernelFaultTrialOptions {
  /** The file write(2) goes to (truncated first); default a temporary file, removed after. */
  file?: string;
  /** How long before the writer is released by unregistering; null waits for as long as it takes. */
  timeoutMs?: number | null;
}

/** The bytes the trial places: never all one value, so zeros or a stale page cannot pass for them. */
export function trialPage(): Uint8Array {
  const page = new Uint8Array(PAGE_SIZE);
  for (let i = 0; i < PAGE_SIZE; i++) page[i] = (i * 31 + 7) & 0xff;
  return page;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Runs the write(2) trial on an open userfaultfd; the fd is left open and as registered as it was. */
export async function tryKernelFault(uffd: Userfaultfd, options: KernelFaultTrialOptions = {}): Promise<KernelFaultOutcome> {
  const dir = options.file ? null : fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-kernel-fault-'));
  const file = options.file ?? path.join(dir!, 'page');
  const region = allocateRegion(PAGE_SIZE, uffd.backend);
  const page = trialPage();
  let faultDelivered = false;
  let registered = false;
  const onEvents = (batch: readonly UffdEvent[]): void => {
    for (const e of batch) {
      if (e.type !== 'pagefault' || e.address !== region.address) continue;
      faultDelivered = true;
      uffd.copy(region.address, page);
    }
  };
  const fd = fs.openSync(file, 'w+');
  let timer: NodeJS.Timeout | undefined;
  try {
    uffd.on('events', onEvents);
    uffd.register(region.address, PAGE_SIZE);
    registered = true;
    const worker = startWorker(new URL('./kernel-fault-writer.ts', import.meta.url), {
      handle: region.handle,
      offset: 0,
      length: PAGE_SIZE,
      fd,
    } satisfies KernelFaultWriterData);
    let timedOut = false;
    const timeoutMs = options.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : options.timeoutMs;
    if (timeoutMs !== null) {
      timer = setTimeout(() => {
        timedOut = true;
        // Unregistering wakes a thread asleep on the range; its write then completes with zeros.
        uffd.unregister(region.address, PAGE_SIZE);
        registered = false;
      }, timeoutMs);
    }
    const result = await workerResult<KernelFaultWriterResult>(worker);
    const bytesMatch = sameBytes(new Uint8Array(fs.readFileSync(file)), page);
    return {
      faultDelivered,
      written: result.written,
      errno: result.errno,
      bytesMatch,
      timedOut,
      handled: faultDelivered && result.written === PAGE_SIZE && bytesMatch && !timedOut,
    };
  } finally {
    clearTimeout(timer);
    uffd.off('events', onEvents);
    // Unregistered before release, so closing the fd later finds no missing page to warn about.
    if (registered && !uffd.closed) uffd.unregister(region.address, PAGE_SIZE);
    region.release();
    fs.closeSync(fd);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}
