// Shared-memory layout of a software-backend region, read by the vCPU threads
// (sim-gate.ts) and the main thread (sim.ts):
//
//   status   Int32[4]      [STATE]: LIVE | ABORTED (both backends)
//   present  Int32[words]  bit p: page p holds data; a vCPU may test it inline
//   control  Int32[...]    | WRITE_SEQ | READ_SEQ | NOTIFY | OWNER |    header
//                          | page | flags | threadId | stamp | x CAPACITY  fault ring
//                          | sleepers[words]  threads asleep on a page of word w
//                          | registered[words] bit p: page p is registered
//                          | wake[pages]       bumped by WAKE; a sleeper waits on its page's cell
//
// The ring is multi-producer (vCPUs reserve a slot with Atomics.add on
// WRITE_SEQ), single-consumer (the userfaultfd on the main thread); an entry is
// published by writing its stamp (seq + 1) last, then bumping NOTIFY.
import { bitmapWords } from './pages.ts';

export const STATE = 0;
export const LIVE = 0;
export const ABORTED = 1;
export const STATUS_BYTES = 16;

export const WRITE_SEQ = 0;
export const READ_SEQ = 1;
export const NOTIFY = 2;
export const OWNER = 3;
const HEADER_WORDS = 4;

export const RING_CAPACITY = 256;
export const ENTRY_WORDS = 4;

export const FLAG_WRITE = 1;

export interface SimViews {
  readonly header: Int32Array;
  readonly ring: Int32Array;
  readonly sleepers: Int32Array;
  readonly registered: Int32Array;
  readonly wake: Int32Array;
}

export function controlBytes(pages: number): number {
  return (HEADER_WORDS + RING_CAPACITY * ENTRY_WORDS + 2 * bitmapWords(pages) + pages) * 4;
}

export function simViews(control: SharedArrayBuffer, pages: number): SimViews {
  const words = bitmapWords(pages);
  let at = 0;
  const take = (n: number): Int32Array => {
    const view = new Int32Array(control, at * 4, n);
    at += n;
    return view;
  };
  return {
    header: take(HEADER_WORDS),
    ring: take(RING_CAPACITY * ENTRY_WORDS),
    sleepers: take(words),
    registered: take(words),
    wake: take(pages),
  };
}
