// A vCPU thread's access to guest RAM it was handed as a RegionHandle.
//
//   interface PageGate { present: Int32Array; ensure(offset, write): void }   // sim only
//   interface AttachedRegion {
//     buffer: ArrayBuffer | SharedArrayBuffer  // whole region, zero-copy (kernel: external
//                                              // ArrayBuffer over the mmap, made in THIS thread)
//     gate: PageGate | null                    // null for kernel: the MMU puts the thread to sleep
//     aborted(): boolean                       // the serving userfaultfd closed with pages missing
//   }
//   attachRegion(handle): AttachedRegion
//
// On the kernel backend a thread asleep on a missing page is woken by close()
// and then reads zeros; aborted() is the only way to tell, so a vCPU must check
// it (e.g. once per block of instructions) and stop with an error.
import { loadNative } from './native.ts';
import type { RegionHandle } from './region.ts';
import { ABORTED, STATE } from './sim-layout.ts';
import { SimPageGate, type PageGate } from './sim-gate.ts';

export type { PageGate } from './sim-gate.ts';

export interface AttachedRegion {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  readonly gate: PageGate | null;
  aborted(): boolean;
}

export function attachRegion(handle: RegionHandle): AttachedRegion {
  const status = new Int32Array(handle.status);
  const aborted = (): boolean => Atomics.load(status, STATE) === ABORTED;
  if (handle.kind === 'mmap') {
    return { buffer: loadNative().view(handle.address, handle.length), gate: null, aborted };
  }
  return { buffer: handle.buffer, gate: new SimPageGate(handle), aborted };
}
