// Shared set-up for the uffd suites: which access paths work here (and why
// not), a region + userfaultfd pair, and vCPU-like workers that touch pages.
import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../../src/worker.ts';
import { allocateRegion, type GuestRegion } from '../../src/uffd/region.ts';
import { openPath } from '../../src/uffd/open.ts';
import type { AccessPath, PagefaultEvent, Userfaultfd } from '../../src/uffd/userfaultfd.ts';
import type { ToucherResult } from './fixtures/toucher.ts';
import type { KernelFaultWriterData, KernelFaultWriterResult } from '../../src/uffd/kernel-fault-writer.ts';
import { createLogger } from '../../src/log.ts';

export const PAGE = 4096;
export const quietLogger = createLogger({ level: 'silent' });

export interface PathAvailability {
  path: AccessPath;
  reason: string | null;
}

/** Every access path, with the reason it cannot be used here (null when it can). */
export function probePaths(paths: readonly AccessPath[]): PathAvailability[] {
  return paths.map((path) => {
    try {
      openPath(path, { logger: quietLogger }).close();
      return { path, reason: null };
    } catch (err) {
      const e = err as { code?: string; errno?: string; message?: string };
      return { path, reason: `${e.code ?? ''} ${e.errno ?? ''}: ${e.message ?? String(err)}` };
    }
  });
}

/** The page's test content: its index as a 32-bit word, then a fill byte. */
export function pagePattern(page: number, salt = 0xa5): Uint8Array {
  const bytes = new Uint8Array(PAGE).fill((page + salt) & 0xff);
  new DataView(bytes.buffer).setUint32(0, (page ^ (salt << 24)) >>> 0, true);
  return bytes;
}

export function patternWord(page: number, salt = 0xa5): number {
  return (page ^ (salt << 24)) >>> 0;
}

export interface Toucher {
  readonly worker: Worker;
  readonly progress: Int32Array;
  readonly result: Promise<ToucherResult>;
}

export class Harness {
  readonly uffd: Userfaultfd;
  readonly region: GuestRegion;
  readonly faults: PagefaultEvent[] = [];
  private readonly workers: Worker[] = [];

  constructor(path: AccessPath, pages: number, options: { devicePath?: string } = {}) {
    this.uffd = openPath(path, { logger: quietLogger, devicePath: options.devicePath });
    this.region = allocateRegion(pages * PAGE, path === 'sim' ? 'sim' : 'kernel');
    this.uffd.on('events', (batch) => {
      for (const e of batch) if (e.type === 'pagefault') this.faults.push(e);
    });
  }

  register(): void {
    this.uffd.register(this.region.address, this.region.length);
  }

  at(page: number): number {
    return this.region.address + page * PAGE;
  }

  /** Place each faulting page with its pattern, once per fault. */
  serveWithPattern(): void {
    this.uffd.on('events', (batch) => {
      for (const e of batch) {
        if (e.type !== 'pagefault') continue;
        const page = (e.address - this.region.address) / PAGE;
        this.uffd.copy(e.address, pagePattern(page));
      }
    });
  }

  nextFault(): Promise<PagefaultEvent> {
    return new Promise((resolve) => {
      const onEvents = (batch: readonly { type: string }[]): void => {
        const fault = batch.find((e) => e.type === 'pagefault') as PagefaultEvent | undefined;
        if (!fault) return;
        this.uffd.off('events', onEvents);
        resolve(fault);
      };
      this.uffd.on('events', onEvents);
    });
  }

  touch(pages: number[], write = false): Toucher {
    const progress = new SharedArrayBuffer(4);
    const worker = startWorker(new URL('./fixtures/toucher.ts', import.meta.url), {
      handle: this.region.handle,
      offsets: pages.map((p) => p * PAGE),
      write,
      progress,
    });
    this.workers.push(worker);
    const result = once(worker, 'message').then(([r]) => r as ToucherResult);
    return { worker, progress: new Int32Array(progress), result };
  }

  /** A worker passes `count` pages from `first` to write(2) on fd: the kernel takes the faults. */
  writeToFile(fd: number, first: number, count: number): Promise<KernelFaultWriterResult> {
    const worker = startWorker(new URL('../../src/uffd/kernel-fault-writer.ts', import.meta.url), {
      handle: this.region.handle,
      offset: first * PAGE,
      length: count * PAGE,
      fd,
    } satisfies KernelFaultWriterData);
    this.workers.push(worker);
    return once(worker, 'message').then(([r]) => r as KernelFaultWriterResult);
  }

  // Close first: it wakes any worker still asleep on a fault, so the workers
  // can exit before their memory is unmapped.
  async dispose(): Promise<void> {
    this.uffd.close();
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.region.release();
  }
}
