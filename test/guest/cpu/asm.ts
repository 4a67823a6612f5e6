// A tiny RV32IM + Zicsr assembler for building guest programs inside tests:
// one instruction or directive per line, labels, ABI register names, the
// common pseudo-instructions, and the raw encoders for generated programs.

const ABI = [
  'zero', 'ra', 'sp', 'gp', 'tp', 't0', 't1', 't2', 's0', 's1', 'a0', 'a1', 'a2', 'a3', 'a4', 'a5',
  'a6', 'a7', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 's9', 's10', 's11', 't3', 't4', 't5', 't6',
];

const CSR_NAMES: Record<string, number> = {
  mstatus: 0x300, misa: 0x301, mie: 0x304, mtvec: 0x305, mstatush: 0x310, mscratch: 0x340,
  mepc: 0x341, mcause: 0x342, mtval: 0x343, mip: 0x344, mcycle: 0xb00, minstret: 0xb02,
  mcycleh: 0xb80, minstreth: 0xb82, cycle: 0xc00, time: 0xc01, instret: 0xc02, cycleh: 0xc80,
  timeh: 0xc81, instreth: 0xc82, mvendorid: 0xf11, marchid: 0xf12, mimpid: 0xf13, mhartid: 0xf14,
};

export const enc = {
  r: (f7: number, rs2: number, rs1: number, f3: number, rd: number, op: number): number =>
    ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0,
  i: (imm: number, rs1: number, f3: number, rd: number, op: number): number =>
    (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0,
  s: (imm: number, rs2: number, rs1: number, f3: number, op: number): number =>
    ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | op) >>> 0,
  b: (imm: number, rs2: number, rs1: number, f3: number): number =>
    ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
      (((imm >> 1) & 15) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0,
  u: (imm: number, rd: number, op: number): number => ((imm & 0xfffff000) | (rd << 7) | op) >>> 0,
  j: (imm: number, rd: number): number =>
    ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) |
      (((imm >> 12) & 0xff) << 12) | (rd << 7) | 0x6f) >>> 0,
};

const OP = {
  add: [0, 0], sub: [0x20, 0], sll: [0, 1], slt: [0, 2], sltu: [0, 3], xor: [0, 4], srl: [0, 5],
  sra: [0x20, 5], or: [0, 6], and: [0, 7], mul: [1, 0], mulh: [1, 1], mulhsu: [1, 2], mulhu: [1, 3],
  div: [1, 4], divu: [1, 5], rem: [1, 6], remu: [1, 7],
} as const;
const OP_IMM = { addi: 0, slti: 2, sltiu: 3, xori: 4, ori: 6, andi: 7 } as const;
const SHIFT_IMM = { slli: [0, 1], srli: [0, 5], srai: [0x20, 5] } as const;
const LOADS = { lb: 0, lh: 1, lw: 2, lbu: 4, lhu: 5 } as const;
const STORES = { sb: 0, sh: 1, sw: 2 } as const;
const BRANCHES = { beq: 0, bne: 1, blt: 4, bge: 5, bltu: 6, bgeu: 7 } as const;
const CSR_OPS = { csrrw: 1, csrrs: 2, csrrc: 3, csrrwi: 5, csrrsi: 6, csrrci: 7 } as const;
const SYSTEM = { ecall: 0x73, ebreak: 0x00100073, mret: 0x30200073, wfi: 0x10500073, fence: 0x0ff0000f, 'fence.i': 0x100f } as const;

export function reg(name: string): number {
  const n = name.trim();
  const abi = ABI.indexOf(n);
  if (abi >= 0) return abi;
  if (n === 'fp') return 8;
  const m = /^x(\d+)$/.exec(n);
  if (m && Number(m[1]) < 32) return Number(m[1]);
  throw new Error(`asm: unknown register ${name}`);
}

export interface Program {
  /** Encoded words, to be copied to RAM at `base`. */
  words: Uint32Array;
  base: number;
  labels: Map<string, number>;
}

/** Instructions a source line expands to, known before labels are resolved. */
function sizeOf(mnemonic: string, args: string[]): number {
  if (mnemonic === 'la') return 2;
  if (mnemonic === 'li') {
    const v = Number(args[1]) | 0;
    return Number.isNaN(Number(args[1])) || v < -2048 || v >= 2048 ? 2 : 1;
  }
  if (mnemonic === '.space') return Number(args[0]) / 4;
  return 1;
}

export function assemble(source: string, base = 0x8000_0000): Program {
  const lines: { mnemonic: string; args: string[]; pc: number; text: string }[] = [];
  const labels = new Map<string, number>();
  let pc = base;
  for (const raw of source.split('\n')) {
    let text = raw.replace(/#.*$/, '').trim();
    for (let m = /^([A-Za-z_.][\w.]*):\s*/.exec(text); m; m = /^([A-Za-z_.][\w.]*):\s*/.exec(text)) {
      labels.set(m[1], pc);
      text = text.slice(m[0].length);
    }
    if (text === '') continue;
    const sp = text.search(/\s/);
    const mnemonic = sp < 0 ? text : text.slice(0, sp);
    const args = sp < 0 ? [] : text.slice(sp).split(',').map((a) => a.trim());
    lines.push({ mnemonic, args, pc, text });
    pc += 4 * sizeOf(mnemonic, args);
  }
  const words: number[] = [];
  for (const line of lines) {
    try {
      words.push(...encodeLine(line.mnemonic, line.args, line.pc, labels));
    } catch (err) {
      throw new Error(`asm: ${line.text}: ${(err as Error).message}`);
    }
  }
  return { words: Uint32Array.from(words), base, labels };
}

function value(s: string, labels: Map<string, number>): number {
  const t = s.trim();
  if (labels.has(t)) return labels.get(t)!;
  const v = Number(t);
  if (!Number.isFinite(v)) throw new Error(`bad value ${s}`);
  return v;
}

function memOperand(s: string, labels: Map<string, number>): [number, number] {
  const m = /^(.*)\((\w+)\)$/.exec(s.trim());
  if (!m) throw new Error(`bad memory operand ${s}`);
  return [m[1].trim() === '' ? 0 : value(m[1], labels), reg(m[2])];
}

function imm12(v: number): number {
  if (v < -2048 || v > 2047) throw new Error(`immediate ${v} does not fit 12 bits`);
  return v;
}

function csrOf(s: string): number {
  return CSR_NAMES[s.trim()] ?? Number(s);
}

function encodeLine(mn: string, a: string[], pc: number, labels: Map<string, number>): number[] {
  const v = (i: number): number => value(a[i], labels);
  const rel = (i: number): number => v(i) - pc;
  if (mn in OP) { const [f7, f3] = OP[mn as keyof typeof OP]; return [enc.r(f7, reg(a[2]), reg(a[1]), f3, reg(a[0]), 0x33)]; }
  if (mn in OP_IMM) return [enc.i(imm12(v(2)), reg(a[1]), OP_IMM[mn as keyof typeof OP_IMM], reg(a[0]), 0x13)];
  if (mn in SHIFT_IMM) {
    const [f7, f3] = SHIFT_IMM[mn as keyof typeof SHIFT_IMM];
    return [enc.i((f7 << 5) | (v(2) & 31), reg(a[1]), f3, reg(a[0]), 0x13)];
  }
  if (mn in LOADS) { const [off, base] = memOperand(a[1], labels); return [enc.i(imm12(off), base, LOADS[mn as keyof typeof LOADS], reg(a[0]), 0x03)]; }
  if (mn in STORES) { const [off, base] = memOperand(a[1], labels); return [enc.s(imm12(off), reg(a[0]), base, STORES[mn as keyof typeof STORES], 0x23)]; }
  if (mn in BRANCHES) return [enc.b(rel(2), reg(a[1]), reg(a[0]), BRANCHES[mn as keyof typeof BRANCHES])];
  if (mn in CSR_OPS) {
    const f3 = CSR_OPS[mn as keyof typeof CSR_OPS];
    const src = f3 >= 5 ? v(2) : reg(a[2]);
    return [enc.i(csrOf(a[1]), src, f3, reg(a[0]), 0x73)];
  }
  if (mn in SYSTEM) return [SYSTEM[mn as keyof typeof SYSTEM]];
  switch (mn) {
    case 'lui': return [enc.u(v(1) << 12, reg(a[0]), 0x37)];
    case 'auipc': return [enc.u(v(1) << 12, reg(a[0]), 0x17)];
    case 'jal': return a.length === 1 ? [enc.j(rel(0), 1)] : [enc.j(rel(1), reg(a[0]))];
    case 'jalr': {
      if (a.length === 1) return [enc.i(0, reg(a[0]), 0, 1, 0x67)];
      if (a[1].includes('(')) { const [off, base] = memOperand(a[1], labels); return [enc.i(off, base, 0, reg(a[0]), 0x67)]; }
      return [enc.i(a.length > 2 ? v(2) : 0, reg(a[1]), 0, reg(a[0]), 0x67)];
    }
    case 'j': return [enc.j(rel(0), 0)];
    case 'call': return [enc.j(rel(0), 1)];
    case 'ret': return [enc.i(0, 1, 0, 0, 0x67)];
    case 'jr': return [enc.i(0, reg(a[0]), 0, 0, 0x67)];
    case 'nop': return [enc.i(0, 0, 0, 0, 0x13)];
    case 'mv': return [enc.i(0, reg(a[1]), 0, reg(a[0]), 0x13)];
    case 'not': return [enc.i(-1, reg(a[1]), 4, reg(a[0]), 0x13)];
    case 'neg': return [enc.r(0x20, reg(a[1]), 0, 0, reg(a[0]), 0x33)];
    case 'seqz': return [enc.i(1, reg(a[1]), 3, reg(a[0]), 0x13)];
    case 'beqz': return [enc.b(rel(1), 0, reg(a[0]), 0)];
    case 'bltz': return [enc.b(rel(1), 0, reg(a[0]), 4)];
    case 'bgez': return [enc.b(rel(1), 0, reg(a[0]), 5)];
    case 'bnez': return [enc.b(rel(1), 0, reg(a[0]), 1)];
    case 'bgt': return [enc.b(rel(2), reg(a[0]), reg(a[1]), 4)];
    case 'ble': return [enc.b(rel(2), reg(a[0]), reg(a[1]), 5)];
    case 'bgtu': return [enc.b(rel(2), reg(a[0]), reg(a[1]), 6)];
    case 'bleu': return [enc.b(rel(2), reg(a[0]), reg(a[1]), 7)];
    case 'csrr': return [enc.i(csrOf(a[1]), 0, 2, reg(a[0]), 0x73)];
    case 'csrw': return [enc.i(csrOf(a[0]), reg(a[1]), 1, 0, 0x73)];
    case 'csrs': return [enc.i(csrOf(a[0]), reg(a[1]), 2, 0, 0x73)];
    case 'csrc': return [enc.i(csrOf(a[0]), reg(a[1]), 3, 0, 0x73)];
    case 'csrwi': return [enc.i(csrOf(a[0]), v(1), 5, 0, 0x73)];
    case 'csrsi': return [enc.i(csrOf(a[0]), v(1), 6, 0, 0x73)];
    case 'csrci': return [enc.i(csrOf(a[0]), v(1), 7, 0, 0x73)];
    case 'li': {
      const imm = v(1) | 0;
      const rd = reg(a[0]);
      if (imm >= -2048 && imm < 2048) return [enc.i(imm, 0, 0, rd, 0x13)];
      const lo = (imm << 20) >> 20;
      return [enc.u((imm - lo) | 0, rd, 0x37), enc.i(lo, rd, 0, rd, 0x13)];
    }
    case 'la': {
      const off = rel(1) | 0;
      const lo = (off << 20) >> 20;
      const rd = reg(a[0]);
      return [enc.u((off - lo) | 0, rd, 0x17), enc.i(lo, rd, 0, rd, 0x13)];
    }
    case '.word': return [v(0) >>> 0];
    case '.space': return new Array<number>(v(0) / 4).fill(0);
    default: throw new Error(`unknown mnemonic ${mn}`);
  }
}
