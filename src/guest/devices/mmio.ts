// What the memory-mapped I/O router needs from a device: a window and
// offset-relative accessors. A load that returns undefined or a store that
// returns false becomes an access fault for the vCPU.
export type AccessSize = 1 | 2 | 4;

export interface MmioDevice {
  readonly base: number;
  readonly size: number;
  load(offset: number, size: AccessSize): number | undefined;
  store(offset: number, size: AccessSize, value: number): boolean;
}

/** The bytes of a 32-bit register that an access of `size` at `offset` sees. */
export function registerSlice(register: number, offset: number, size: AccessSize): number {
  const shift = (offset & 3) * 8;
  const mask = size === 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
  return ((register >>> shift) & mask) >>> 0;
}

/** `register` with the bytes written by an access of `size` at `offset` replaced. */
export function mergeRegister(register: number, offset: number, size: AccessSize, value: number): number {
  const shift = (offset & 3) * 8;
  const mask = size === 4 ? 0xffff_ffff : ((1 << (size * 8)) - 1) << shift;
  return ((register & ~mask) | ((value << shift) & mask)) >>> 0;
}
