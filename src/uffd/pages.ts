// Page arithmetic and the one-bit-per-page bitmaps shared by both backends.
import { UffdRangeError } from './errors.ts';

export const PAGE_SIZE = 4096;

export function isPageAligned(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n % PAGE_SIZE === 0;
}

/** Throws UFFD_ERR_RANGE unless [address, address+length) is a non-empty page-aligned range. */
export function checkRange(address: number, length: number, doing: string): void {
  if (!isPageAligned(address) || !isPageAligned(length) || length === 0) {
    throw new UffdRangeError(
      `${doing}: address ${hex(address)} and length ${length} must be non-zero multiples of ${PAGE_SIZE}`,
      { errno: 'EINVAL' },
    );
  }
}

export function pageIndex(offset: number): number {
  return Math.floor(offset / PAGE_SIZE);
}

export function bitmapWords(pages: number): number {
  return Math.ceil(pages / 32);
}

export function hasBit(bits: Int32Array, page: number): boolean {
  return (Atomics.load(bits, page >>> 5) & (1 << (page & 31))) !== 0;
}

export function setBit(bits: Int32Array, page: number): void {
  Atomics.or(bits, page >>> 5, 1 << (page & 31));
}

export function clearBit(bits: Int32Array, page: number): void {
  Atomics.and(bits, page >>> 5, ~(1 << (page & 31)));
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
