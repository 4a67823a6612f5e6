// Hand-assembled RV32I guests and hand-built ELF files for tests that need a
// guest doing exactly a few known things (no compiler required).
export const reg = { zero: 0, ra: 1, sp: 2, t0: 5, t1: 6, t2: 7, a0: 10, a1: 11, a2: 12, a3: 13 } as const;

const r = (rd: number, rs1: number, rs2: number, f3: number, f7: number, op: number): number =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const i = (rd: number, rs1: number, imm: number, f3: number, op: number): number =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const s = (rs1: number, rs2: number, imm: number, f3: number): number =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | 0x23) >>> 0;

export const asm = {
  lui: (rd: number, imm20: number) => (((imm20 & 0xfffff) << 12) | (rd << 7) | 0x37) >>> 0,
  addi: (rd: number, rs1: number, imm: number) => i(rd, rs1, imm, 0, 0x13),
  add: (rd: number, rs1: number, rs2: number) => r(rd, rs1, rs2, 0, 0, 0x33),
  lw: (rd: number, rs1: number, imm: number) => i(rd, rs1, imm, 2, 0x03),
  sw: (rs1: number, rs2: number, imm: number) => s(rs1, rs2, imm, 2),
  sb: (rs1: number, rs2: number, imm: number) => s(rs1, rs2, imm, 0),
  /** jal x0, offset (offset in bytes, even, within ±1 MiB). */
  j: (offset: number) => {
    const imm = offset & 0x1fffff;
    return ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) | 0x6f) >>> 0;
  },
  /** bne rs1, rs2, offset (offset in bytes, even, within ±4 KiB). */
  bne: (rs1: number, rs2: number, offset: number) => {
    const imm = offset & 0x1fff;
    return ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (1 << 12) | (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
  },
  wfi: () => 0x10500073,
};

/** Instructions that put the 32-bit `value` in `rd`. */
export function li(rd: number, value: number): number[] {
  const lo = ((value & 0xfff) << 20) >> 20;
  const hi = ((value - lo) >>> 12) & 0xfffff;
  return [asm.lui(rd, hi), asm.addi(rd, rd, lo)];
}

/** Stores `value` (32-bit) at absolute `address`, using t0/t1. */
export function storeWord(address: number, value: number): number[] {
  return [...li(reg.t0, address), ...li(reg.t1, value), asm.sw(reg.t0, reg.t1, 0)];
}

/** Ends the guest through the SiFive test finisher with a pass. */
export function finishPass(): number[] {
  return [...storeWord(0x0010_0000, 0x5555), asm.wfi(), asm.j(-4)];
}

/** An endless loop (time keeps advancing). */
export function spin(): number[] {
  return [asm.j(0)];
}

export interface ElfSpec {
  entry?: number;
  segments: { address: number; data: Uint8Array; memorySize?: number; offset?: number }[];
  elfClass?: number;
  dataEncoding?: number;
  type?: number;
  machine?: number;
}

/** An ELF32 executable with one PT_LOAD per segment (fields overridable to make it malformed). */
export function buildElf(spec: ElfSpec): Uint8Array {
  const headerBytes = 52 + 32 * spec.segments.length;
  const total = headerBytes + spec.segments.reduce((n, seg) => n + seg.data.length, 0);
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, spec.elfClass ?? 1, spec.dataEncoding ?? 1, 1]);
  v.setUint16(16, spec.type ?? 2, true);
  v.setUint16(18, spec.machine ?? 243, true);
  v.setUint32(20, 1, true);
  v.setUint32(24, spec.entry ?? spec.segments[0]?.address ?? 0, true);
  v.setUint32(28, 52, true);
  v.setUint16(40, 52, true);
  v.setUint16(42, 32, true);
  v.setUint16(44, spec.segments.length, true);
  let data = headerBytes;
  spec.segments.forEach((seg, n) => {
    const ph = 52 + 32 * n;
    v.setUint32(ph, 1, true);
    v.setUint32(ph + 4, seg.offset ?? data, true);
    v.setUint32(ph + 8, seg.address, true);
    v.setUint32(ph + 12, seg.address, true);
    v.setUint32(ph + 16, seg.data.length, true);
    v.setUint32(ph + 20, seg.memorySize ?? seg.data.length, true);
    v.setUint32(ph + 24, 7, true);
    out.set(seg.data, data);
    data += seg.data.length;
  });
  return out;
}

export function code(words: number[]): Uint8Array {
  return new Uint8Array(Uint32Array.from(words).buffer);
}

/** A one-segment image at the start of RAM running `words`. */
export function tinyGuest(words: number[]): Uint8Array {
  return buildElf({ segments: [{ address: 0x8000_0000, data: code(words) }] });
}
