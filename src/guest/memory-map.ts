// The guest's physical address space, QEMU `virt` compatible, and the branded
// number types that keep guest addresses, RAM offsets and page indices apart.
import { GuestConfigError } from './errors.ts';

export type GuestAddress = number & { readonly __brand: 'GuestAddress' };
/** Byte offset from the start of guest RAM (also the offset into the host buffer). */
export type RamOffset = number & { readonly __brand: 'RamOffset' };
/** Index of a 4 KiB guest page, counted from the start of RAM. */
export type PageIndex = number & { readonly __brand: 'PageIndex' };

export const PAGE_SIZE = 4096;
export const PAGE_SHIFT = 12;

export const RAM_BASE = 0x8000_0000 as GuestAddress;
export const MIN_RAM_SIZE = 16 * 1024 * 1024;
export const MAX_RAM_SIZE = 2 * 1024 * 1024 * 1024;
export const MAX_VCPUS = 4;

export const FINISHER_BASE = 0x0010_0000 as GuestAddress;
export const FINISHER_SIZE = 0x1000;
export const CLINT_BASE = 0x0200_0000 as GuestAddress;
export const CLINT_SIZE = 0x1_0000;
export const UART_BASE = 0x1000_0000 as GuestAddress;
export const UART_SIZE = 0x100;
/** Our block device sits in the gap QEMU's virt map leaves after virtio-mmio and fw_cfg. */
export const BLOCK_BASE = 0x1020_0000 as GuestAddress;
export const BLOCK_SIZE = 0x1000;

export function guestAddress(value: number): GuestAddress {
  return (value >>> 0) as GuestAddress;
}

/** The RAM offset of `addr`, or undefined when [addr, addr+length) is not all RAM. */
export function toRamOffset(addr: GuestAddress, length: number, ramSize: number): RamOffset | undefined {
  const offset = addr - RAM_BASE;
  if (offset < 0 || length < 0 || offset + length > ramSize) return undefined;
  return offset as RamOffset;
}

export function pageOf(offset: RamOffset): PageIndex {
  return Math.floor(offset / PAGE_SIZE) as PageIndex;
}

export function pageCount(ramSize: number): number {
  return Math.ceil(ramSize / PAGE_SIZE);
}

/** Checks a RAM size is supported: 16 MiB to 2 GiB, whole pages. */
export function validateRamSize(ramSize: number): number {
  if (!Number.isSafeInteger(ramSize) || ramSize < MIN_RAM_SIZE || ramSize > MAX_RAM_SIZE || ramSize % PAGE_SIZE !== 0) {
    throw new GuestConfigError(
      `RAM size ${ramSize} bytes is not supported: use a whole number of 4 KiB pages from 16M to 2G (e.g. --ram 64M)`,
    );
  }
  return ramSize;
}

export function validateVcpus(vcpus: number): number {
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > MAX_VCPUS) {
    throw new GuestConfigError(`vCPU count ${vcpus} is not supported: use 1 to ${MAX_VCPUS}`);
  }
  return vcpus;
}

const SIZE_UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** Parses "64M", "1G", "512K", "16777216" (binary units, optional trailing B/iB). */
export function parseSize(text: string): number {
  const match = /^\s*(\d+)\s*([KMG]?)(?:i?B)?\s*$/i.exec(text);
  if (!match) throw new GuestConfigError(`size "${text}" is not understood: write a number with an optional K, M or G suffix (e.g. 64M)`);
  return Number(match[1]) * SIZE_UNITS[match[2]!.toUpperCase()]!;
}
