// Worker: a stand-in vCPU that reads the given pages of guest RAM, faulting on
// the missing ones, and counts in shared memory each page that held the
// expected bytes (waking a thread blocked on that count).
import { attachRegion } from '../../src/uffd/attach.ts';
import type { RegionHandle } from '../../src/uffd/region.ts';
import { workerPayload } from '../../src/worker.ts';
import { fillPage, PAGE } from '../transfer/pattern.ts';

export interface ReaderJob {
  readonly handle: RegionHandle;
  readonly pages: readonly number[];
  /** Int32 [right, wrong]. */
  readonly counts: SharedArrayBuffer;
}

const { handle, pages, counts } = workerPayload<ReaderJob>();
const ram = new Uint8Array(attachRegion(handle).buffer);
const tally = new Int32Array(counts);
const expected = new Uint8Array(PAGE);
for (const p of pages) {
  fillPage(expected, p);
  const right = Buffer.compare(ram.subarray(p * PAGE, (p + 1) * PAGE), expected) === 0;
  Atomics.add(tally, right ? 0 : 1, 1);
  Atomics.notify(tally, 0);
}
