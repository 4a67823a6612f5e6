// Worker: a stand-in vCPU that reads the given pages of guest RAM (faulting
// on the missing ones) and reports any page whose bytes differ from expected.
import { parentPort } from 'node:worker_threads';
import { attachRegion } from '../../src/uffd/attach.ts';
import type { RegionHandle } from '../../src/uffd/region.ts';
import { workerPayload } from '../../src/worker.ts';
import { fillPage, PAGE } from './pattern.ts';

interface Job {
  readonly handle: RegionHandle;
  readonly pages: readonly number[];
  /** page → generation of the expected contents (default 0). */
  readonly generations?: Record<number, number>;
}

const { handle, pages, generations = {} } = workerPayload<Job>();
const region = attachRegion(handle);
const ram = new Uint8Array(region.buffer);
const expected = new Uint8Array(PAGE);
const wrong: number[] = [];
for (const p of pages) {
  region.gate?.ensure(p * PAGE, false);
  fillPage(expected, p, generations[p] ?? 0);
  if (Buffer.compare(ram.subarray(p * PAGE, (p + 1) * PAGE), expected) !== 0) wrong.push(p);
}
parentPort?.postMessage({ wrong, checked: pages.length, aborted: region.aborted() });
