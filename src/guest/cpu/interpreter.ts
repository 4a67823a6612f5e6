// Executes one instruction at h.pc: the reference semantics of the hart. The
// dispatcher uses it for everything compiled blocks leave out (CSRs, system
// instructions, MMIO, traps, budget tails) and, in the interpreter engine, for all.
import { div, divu, mulh, mulhsu, mulhu, rem, remu } from './arith.ts';
import {
  csrExists, csrIsReadOnly, MIP_MTIP, pendingInterrupts, readCsr, writeCsr,
} from './csr.ts';
import {
  FUNCT7_ALT, FUNCT7_MULDIV, INST_EBREAK, INST_ECALL, INST_MRET, INST_WFI,
  OPC_AUIPC, OPC_BRANCH, OPC_JAL, OPC_JALR, OPC_LOAD, OPC_LUI, OPC_MISC_MEM, OPC_OP, OPC_OP_IMM,
  OPC_STORE, OPC_SYSTEM,
  csrNumber, funct3, funct7, immB, immI, immJ, immS, immU, rd, rs1, rs2,
} from './decode.ts';
import type { Hart } from './hart.ts';
import { ensurePresent, PAGE_SHIFT } from './ram.ts';
import {
  CAUSE_BREAKPOINT, CAUSE_ECALL_M, CAUSE_ILLEGAL_INSTRUCTION, CAUSE_INSTRUCTION_ACCESS_FAULT,
  CAUSE_INSTRUCTION_MISALIGNED, CAUSE_LOAD_ACCESS_FAULT, CAUSE_LOAD_MISALIGNED,
  CAUSE_STORE_ACCESS_FAULT, CAUSE_STORE_MISALIGNED, raiseException, returnFromTrap,
} from './trap.ts';
import { GRANULE_SHIFT } from './code-cache.ts';

/** The instruction executed (or trapped) and took one tick. */
export const STEP_DONE = 0;
/** wfi let time pass (and retired if the timer fired); the caller re-checks budget and interrupts. */
export const STEP_WAITED = 1;
/** wfi with no enabled interrupt that could ever become pending. */
export const STEP_HALTED = 2;
export type StepOutcome = typeof STEP_DONE | typeof STEP_WAITED | typeof STEP_HALTED;

export function step(h: Hart): StepOutcome {
  const outcome = execute(h);
  if (outcome === STEP_DONE) h.time += 1;
  return outcome;
}

function execute(h: Hart): StepOutcome {
  const mem = h.mem;
  const pc = h.pc;
  const fetchOff = (pc - mem.base) >>> 0;
  if (fetchOff >= mem.size) {
    raiseException(h, CAUSE_INSTRUCTION_ACCESS_FAULT, pc);
    return STEP_DONE;
  }
  if (mem.gate !== null) ensurePresent(mem.gate, fetchOff, false);
  const inst = mem.s32[fetchOff >>> 2];
  const x = h.x;
  const next = (pc + 4) >>> 0;
  const f3 = funct3(inst);

  switch (inst & 0x7f) {
    case OPC_LUI:
      setReg(x, rd(inst), immU(inst));
      break;
    case OPC_AUIPC:
      setReg(x, rd(inst), (pc + immU(inst)) | 0);
      break;
    case OPC_JAL:
      return jump(h, rd(inst), (pc + immJ(inst)) >>> 0);
    case OPC_JALR:
      if (f3 !== 0) return illegal(h, inst);
      return jump(h, rd(inst), ((x[rs1(inst)] + immI(inst)) & ~1) >>> 0);
    case OPC_BRANCH: {
      const a = x[rs1(inst)];
      const b = x[rs2(inst)];
      let taken: boolean;
      switch (f3) {
        case 0: taken = a === b; break;
        case 1: taken = a !== b; break;
        case 4: taken = a < b; break;
        case 5: taken = a >= b; break;
        case 6: taken = (a >>> 0) < (b >>> 0); break;
        case 7: taken = (a >>> 0) >= (b >>> 0); break;
        default: return illegal(h, inst);
      }
      if (!taken) break;
      const target = (pc + immB(inst)) >>> 0;
      if ((target & 3) !== 0) {
        raiseException(h, CAUSE_INSTRUCTION_MISALIGNED, target);
        return STEP_DONE;
      }
      h.pc = target;
      return STEP_DONE;
    }
    case OPC_LOAD:
      if (f3 === 3 || f3 > 5) return illegal(h, inst);
      if (!load(h, inst, f3, (x[rs1(inst)] + immI(inst)) >>> 0)) return STEP_DONE;
      break;
    case OPC_STORE:
      if (f3 > 2) return illegal(h, inst);
      if (!store(h, f3, (x[rs1(inst)] + immS(inst)) >>> 0, x[rs2(inst)])) return STEP_DONE;
      break;
    case OPC_OP_IMM: {
      const a = x[rs1(inst)];
      const imm = immI(inst);
      const shamt = imm & 31;
      let v: number;
      switch (f3) {
        case 0: v = (a + imm) | 0; break;
        case 1: if (funct7(inst) !== 0) return illegal(h, inst); v = a << shamt; break;
        case 2: v = a < imm ? 1 : 0; break;
        case 3: v = (a >>> 0) < (imm >>> 0) ? 1 : 0; break;
        case 4: v = a ^ imm; break;
        case 5:
          if (funct7(inst) === 0) v = (a >>> shamt) | 0;
          else if (funct7(inst) === FUNCT7_ALT) v = a >> shamt;
          else return illegal(h, inst);
          break;
        case 6: v = a | imm; break;
        default: v = a & imm; break;
      }
      setReg(x, rd(inst), v);
      break;
    }
    case OPC_OP: {
      const v = operate(funct7(inst), f3, x[rs1(inst)], x[rs2(inst)]);
      if (v === undefined) return illegal(h, inst);
      setReg(x, rd(inst), v);
      break;
    }
    case OPC_MISC_MEM:
      if (f3 === 1) h.code.invalidateAll();
      else if (f3 !== 0) return illegal(h, inst);
      break;
    case OPC_SYSTEM:
      return system(h, inst, f3);
    default:
      return illegal(h, inst);
  }
  h.pc = next;
  return STEP_DONE;
}

function setReg(x: Int32Array, r: number, v: number): void {
  if (r !== 0) x[r] = v;
}

function illegal(h: Hart, inst: number): StepOutcome {
  raiseException(h, CAUSE_ILLEGAL_INSTRUCTION, inst);
  return STEP_DONE;
}

function jump(h: Hart, link: number, target: number): StepOutcome {
  if ((target & 3) !== 0) {
    raiseException(h, CAUSE_INSTRUCTION_MISALIGNED, target);
    return STEP_DONE;
  }
  setReg(h.x, link, (h.pc + 4) | 0);
  h.pc = target;
  return STEP_DONE;
}

/** OP (register-register) results; undefined for encodings that do not exist. */
function operate(f7: number, f3: number, a: number, b: number): number | undefined {
  if (f7 === 0) {
    switch (f3) {
      case 0: return (a + b) | 0;
      case 1: return a << b;
      case 2: return a < b ? 1 : 0;
      case 3: return (a >>> 0) < (b >>> 0) ? 1 : 0;
      case 4: return a ^ b;
      case 5: return (a >>> b) | 0;
      case 6: return a | b;
      default: return a & b;
    }
  }
  if (f7 === FUNCT7_ALT) {
    if (f3 === 0) return (a - b) | 0;
    if (f3 === 5) return a >> b;
    return undefined;
  }
  if (f7 === FUNCT7_MULDIV) {
    switch (f3) {
      case 0: return Math.imul(a, b);
      case 1: return mulh(a, b);
      case 2: return mulhsu(a, b);
      case 3: return mulhu(a, b);
      case 4: return div(a, b);
      case 5: return divu(a, b);
      case 6: return rem(a, b);
      default: return remu(a, b);
    }
  }
  return undefined;
}

/** Bytes accessed by LOAD/STORE funct3 (the low two bits give the width). */
const widthOf = (f3: number): 1 | 2 | 4 => (1 << (f3 & 3)) as 1 | 2 | 4;

/** Returns false when the load trapped. */
function load(h: Hart, inst: number, f3: number, addr: number): boolean {
  const size = widthOf(f3);
  if ((addr & (size - 1)) !== 0) {
    raiseException(h, CAUSE_LOAD_MISALIGNED, addr);
    return false;
  }
  const mem = h.mem;
  const off = (addr - mem.base) >>> 0;
  let v: number;
  if (off < mem.size) {
    if (mem.gate !== null) ensurePresent(mem.gate, off, false);
    switch (f3) {
      case 0: v = mem.s8[off]; break;
      case 1: v = mem.s16[off >>> 1]; break;
      case 2: v = mem.s32[off >>> 2]; break;
      case 4: v = mem.u8[off]; break;
      default: v = mem.u16[off >>> 1]; break;
    }
  } else {
    const raw = h.bus.mmioLoad(addr, size);
    if (raw === undefined) {
      raiseException(h, CAUSE_LOAD_ACCESS_FAULT, addr);
      return false;
    }
    v = extend(raw, f3);
  }
  setReg(h.x, rd(inst), v);
  return true;
}

/** A device's raw value, sign- or zero-extended as the load asks. */
function extend(raw: number, f3: number): number {
  switch (f3) {
    case 0: return (raw << 24) >> 24;
    case 1: return (raw << 16) >> 16;
    case 2: return raw | 0;
    case 4: return raw & 0xff;
    default: return raw & 0xffff;
  }
}

/** Returns false when the store trapped. */
function store(h: Hart, f3: number, addr: number, value: number): boolean {
  const size = widthOf(f3);
  if ((addr & (size - 1)) !== 0) {
    raiseException(h, CAUSE_STORE_MISALIGNED, addr);
    return false;
  }
  const mem = h.mem;
  const off = (addr - mem.base) >>> 0;
  if (off >= mem.size) {
    const masked = size === 4 ? value >>> 0 : value & (size === 2 ? 0xffff : 0xff);
    if (!h.bus.mmioStore(addr, size, masked)) {
      raiseException(h, CAUSE_STORE_ACCESS_FAULT, addr);
      return false;
    }
    return true;
  }
  if (mem.gate !== null) ensurePresent(mem.gate, off, true);
  switch (f3) {
    case 0: mem.u8[off] = value; break;
    case 1: mem.u16[off >>> 1] = value; break;
    default: mem.s32[off >>> 2] = value; break;
  }
  mem.dirty[off >>> PAGE_SHIFT] = 1;
  if (h.code.marks[off >>> GRANULE_SHIFT] !== 0) h.code.storeHit(off, size);
  return true;
}

function system(h: Hart, inst: number, f3: number): StepOutcome {
  if (f3 === 0) {
    switch (inst) {
      case INST_ECALL: raiseException(h, CAUSE_ECALL_M, 0); return STEP_DONE;
      // mtval 0, as QEMU 7.2 reports it (the spec allows 0 or the pc).
      case INST_EBREAK: raiseException(h, CAUSE_BREAKPOINT, 0); return STEP_DONE;
      case INST_MRET: returnFromTrap(h); return STEP_DONE;
      case INST_WFI: return waitForInterrupt(h);
      default: return illegal(h, inst);
    }
  }
  if (f3 === 4) return illegal(h, inst);
  const n = csrNumber(inst);
  const src = rs1(inst);
  const immediate = f3 >= 5;
  const operand = immediate ? src : h.x[src];
  const op = f3 & 3;
  // csrrs/csrrc with x0 (or uimm 0) only read, so they are legal on read-only CSRs.
  const writes = op === 1 || src !== 0;
  if (!csrExists(n) || (writes && csrIsReadOnly(n))) return illegal(h, inst);
  const old = readCsr(h, n);
  if (writes) {
    writeCsr(h, n, op === 1 ? operand : op === 2 ? old | operand : old & ~operand);
  }
  setReg(h.x, rd(inst), old);
  h.pc = (h.pc + 4) >>> 0;
  return STEP_DONE;
}

/**
 * wfi retires once an interrupt enabled in mie is pending (whatever
 * mstatus.MIE says). Until then only the timer can change, so time jumps
 * straight to mtimecmp and the wfi retires there, the wait standing for its
 * tick. A budget that ends first stops the jump and leaves pc on the wfi, which
 * waits out the rest when re-executed: a split run equals a whole one.
 */
function waitForInterrupt(h: Hart): StepOutcome {
  const enabled = h.csr.mie;
  if ((pendingInterrupts(h) & enabled) !== 0) {
    h.pc = (h.pc + 4) >>> 0;
    return STEP_DONE;
  }
  if ((enabled & MIP_MTIP) === 0) return STEP_HALTED;
  const compare = h.bus.timerCompare();
  h.time = Math.min(compare, h.end);
  if (h.time >= compare) h.pc = (h.pc + 4) >>> 0;
  return STEP_WAITED;
}
