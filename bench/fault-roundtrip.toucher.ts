// Worker for bench/fault-roundtrip.ts, standing in for a vCPU: reads one byte
// of each listed page and records how long each read took (touch → resume),
// warm-up pages first and unrecorded.
import { parentPort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { workerPayload } from '../src/worker.ts';
import { attachRegion } from '../src/uffd/attach.ts';
import type { RegionHandle } from '../src/uffd/region.ts';

export interface ToucherData {
  handle: RegionHandle;
  /** Byte offsets of distinct pages: `warmup` of them, then the measured ones. */
  offsets: Float64Array;
  warmup: number;
  /** One Float64 per measured touch: nanoseconds. */
  latencies: SharedArrayBuffer;
}

const { handle, offsets, warmup, latencies } = workerPayload<ToucherData>();
const region = attachRegion(handle);
const bytes = new Uint8Array(region.buffer);
const gate = region.gate;
const out = new Float64Array(latencies);
let sum = 0;
for (let i = 0; i < offsets.length; i++) {
  const offset = offsets[i];
  const start = performance.now();
  gate?.ensure(offset, false);
  sum += bytes[offset];
  const end = performance.now();
  if (i >= warmup) out[i - warmup] = (end - start) * 1e6;
}
parentPort!.postMessage({ sum, aborted: region.aborted() });
