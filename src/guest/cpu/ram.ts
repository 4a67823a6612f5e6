// Typed views of guest RAM, built once per hart and validated against the bus,
// so the interpreter and compiled blocks can index RAM without further checks.
// Views are little-endian on a little-endian host; misaligned accesses trap, so
// every access lands on a whole element of its view.
import { HartBusError } from './errors.ts';
import type { HartBus, PageGate } from './hart.ts';

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
const MIN_RAM = PAGE_SIZE;
const MAX_RAM = 0x8000_0000;

export interface RamViews {
  readonly base: number;
  readonly size: number;
  readonly u8: Uint8Array;
  readonly s8: Int8Array;
  readonly u16: Uint16Array;
  readonly s16: Int16Array;
  readonly s32: Int32Array;
  readonly dirty: Uint8Array;
  readonly gate: PageGate | null;
}

export function ramViews(bus: HartBus): RamViews {
  const { ram, ramBase, ramSize, dirty, gate } = bus;
  if (!Number.isInteger(ramBase) || ramBase < 0 || ramBase % PAGE_SIZE !== 0 || ramBase + ramSize > 0x1_0000_0000) {
    throw new HartBusError(`ramBase 0x${ramBase.toString(16)} must be page-aligned with all of RAM below 4 GiB`);
  }
  if (!Number.isInteger(ramSize) || ramSize < MIN_RAM || ramSize > MAX_RAM || ramSize % PAGE_SIZE !== 0) {
    throw new HartBusError(`ramSize ${ramSize} must be a multiple of 4 KiB between 4 KiB and 2 GiB`);
  }
  if (ram.byteLength < ramSize) {
    throw new HartBusError(`ram holds ${ram.byteLength} bytes, fewer than ramSize ${ramSize}`);
  }
  const pages = ramSize / PAGE_SIZE;
  if (dirty.length < pages) {
    throw new HartBusError(`dirty log has ${dirty.length} bytes, fewer than the ${pages} RAM pages`);
  }
  if (gate !== null && gate.present.length * 32 < pages) {
    throw new HartBusError(`page gate's present bitmap covers ${gate.present.length * 32} pages, fewer than ${pages}`);
  }
  return {
    base: ramBase,
    size: ramSize,
    u8: new Uint8Array(ram, 0, ramSize),
    s8: new Int8Array(ram, 0, ramSize),
    u16: new Uint16Array(ram, 0, ramSize >>> 1),
    s16: new Int16Array(ram, 0, ramSize >>> 1),
    s32: new Int32Array(ram, 0, ramSize >>> 2),
    dirty,
    gate,
  };
}

/** For the software userfaultfd: block until the page holding RAM offset `off` is present. */
export function ensurePresent(gate: PageGate, off: number, write: boolean): void {
  const page = off >>> PAGE_SHIFT;
  if ((gate.present[page >>> 5] & (1 << (page & 31))) === 0) gate.ensure(off, write);
}
