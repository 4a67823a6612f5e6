// ELF32 guest images: parsed and validated completely before a byte reaches
// guest RAM (an image is untrusted data), then loaded as QEMU's
// `-bios none -kernel` does: PT_LOAD segments copied, the rest of each
// segment's memory size zero-filled, entry at e_entry.
import { GuestImageError } from './errors.ts';
import { RAM_BASE } from './memory-map.ts';

export interface ElfSegment {
  /** Guest physical address (p_paddr, as QEMU loads it). */
  address: number;
  /** Bytes from the file. */
  data: Uint8Array;
  /** Bytes in memory; the tail past data is zero. */
  memorySize: number;
}

export interface GuestImage {
  entry: number;
  segments: ElfSegment[];
  /** The image file bytes, for identity checks (hash) by migration. */
  bytes: Uint8Array;
}

const EHDR_SIZE = 52;
const PHDR_SIZE = 32;
const PT_LOAD = 1;
const ET_EXEC = 2;
const EM_RISCV = 243;

function fail(what: string, advice = 'build it with scripts/build-guests.sh (rv32im, linked at 0x80000000) or check the path'): never {
  throw new GuestImageError(`guest image refused: ${what}`, { advice });
}

/** Parses and validates an ELF32 RISC-V executable for a machine with `ramSize` bytes of RAM. */
export function parseElf(bytes: Uint8Array, ramSize: number): GuestImage {
  if (bytes.length < EHDR_SIZE) fail(`file is ${bytes.length} bytes, shorter than an ELF header (${EHDR_SIZE}); it is truncated or not an ELF file`);
  if (bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) fail('no ELF magic (\\x7fELF) at the start: not an ELF file');
  if (bytes[4] !== 1) fail(`ELF class ${bytes[4]} is not ELFCLASS32 (1): build for rv32 (-march=rv32im -mabi=ilp32)`);
  if (bytes[5] !== 1) fail(`ELF data encoding ${bytes[5]} is not little-endian (1)`);
  if (bytes[6] !== 1) fail(`ELF version ${bytes[6]} is not 1`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint16(16, true);
  const machine = view.getUint16(18, true);
  const entry = view.getUint32(24, true);
  const phoff = view.getUint32(28, true);
  const phentsize = view.getUint16(42, true);
  const phnum = view.getUint16(44, true);
  if (type !== ET_EXEC) fail(`ELF type ${type} is not ET_EXEC (2): link a static executable, not an object or shared library`);
  if (machine !== EM_RISCV) fail(`ELF machine ${machine} is not EM_RISCV (243): this is an image for another architecture`);
  if (phnum === 0) fail('no program headers: nothing to load');
  if (phentsize !== PHDR_SIZE) fail(`program header size ${phentsize} is not ${PHDR_SIZE}`);
  if (phoff + phnum * PHDR_SIZE > bytes.length) fail(`program headers (offset ${phoff}, ${phnum} entries) run past the end of the ${bytes.length}-byte file: it is truncated`);

  const ramEnd = RAM_BASE + ramSize;
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * PHDR_SIZE;
    if (view.getUint32(at, true) !== PT_LOAD) continue;
    const offset = view.getUint32(at + 4, true);
    const address = view.getUint32(at + 12, true);
    const fileSize = view.getUint32(at + 16, true);
    const memorySize = view.getUint32(at + 20, true);
    if (memorySize === 0) continue;
    if (fileSize > memorySize) fail(`segment ${i}: file size ${fileSize} exceeds memory size ${memorySize}`);
    if (offset + fileSize > bytes.length) fail(`segment ${i}: bytes ${offset}..${offset + fileSize} lie past the end of the ${bytes.length}-byte file: it is truncated`);
    if (address < RAM_BASE || address + memorySize > ramEnd) {
      fail(
        `segment ${i} at 0x${address.toString(16)}..0x${(address + memorySize).toString(16)} is outside RAM 0x${RAM_BASE.toString(16)}..0x${ramEnd.toString(16)}`,
        'link the image at 0x80000000 (src/guest/programs/common/link.ld) or give the machine more RAM (--ram)',
      );
    }
    segments.push({ address, data: bytes.subarray(offset, offset + fileSize), memorySize });
  }
  if (segments.length === 0) fail('no loadable (PT_LOAD) segment');
  const sorted = [...segments].sort((a, b) => a.address - b.address);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    if (prev.address + prev.memorySize > sorted[i]!.address) {
      fail(`segments at 0x${prev.address.toString(16)} and 0x${sorted[i]!.address.toString(16)} overlap`);
    }
  }
  const inside = segments.some((s) => entry >= s.address && entry < s.address + s.memorySize);
  if (!inside) fail(`entry point 0x${entry.toString(16)} is not inside any loaded segment`);
  if (entry % 4 !== 0) fail(`entry point 0x${entry.toString(16)} is not 4-byte aligned`);
  return { entry, segments, bytes };
}

/** Copies the image's segments into RAM (a view of all of guest RAM) and zero-fills their tails. */
export function loadElf(image: GuestImage, ram: Uint8Array): void {
  for (const s of image.segments) {
    const offset = s.address - RAM_BASE;
    ram.set(s.data, offset);
    ram.fill(0, offset + s.data.length, offset + s.memorySize);
  }
}
