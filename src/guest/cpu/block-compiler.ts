// Turns a planned region of guest code into a JavaScript function with
// `new Function`, so V8 compiles guest loops to machine code. Guest registers
// live in locals for the whole region (written back at every exit); RAM is
// read and written through typed-array views with the range, alignment,
// code-page and (software userfaultfd only) presence checks inlined. Anything
// else (MMIO, traps, stores onto compiled code, a block that does not fit the
// budget) exits with an odd pc: "interpret this one instruction".
//
// Generated shape:
//   let r5 = x[5], ...;  let t = h.time; const lim = h.limit; let b = 0;
//   for (;;) switch (b) {
//     case 0:                       // one case per basic block
//       if (t + LEN > lim) <exit: interpret first instruction>
//       ...straight-line code, each memory access with its own exit...
//       t += LEN;
//       if (cond) { b = 1; continue; } <exit: return fall-through pc>
//   }
import { div, divu, mulh, mulhsu, mulhu, rem, remu } from './arith.ts';
import type { RegionFn } from './code-cache.ts';
import { GRANULE_SHIFT } from './code-cache.ts';
import {
  FUNCT7_ALT, FUNCT7_MULDIV, OPC_AUIPC, OPC_BRANCH, OPC_JAL, OPC_JALR, OPC_LOAD, OPC_LUI,
  OPC_MISC_MEM, OPC_OP, OPC_OP_IMM, OPC_STORE,
  funct3, funct7, immB, immI, immJ, immS, immU, rd, rs1, rs2,
} from './decode.ts';
import type { Hart } from './hart.ts';
import { PAGE_SHIFT } from './ram.ts';
import type { PlannedBlock, RegionPlan } from './region-plan.ts';

const HELPERS = { mulh, mulhsu, mulhu, div, divu, rem, remu };

interface Emitter {
  plan: RegionPlan;
  base: number;
  size: number;
  gated: boolean;
  written: Set<number>;
  used: Set<number>;
}

/** Guest address of RAM offset `off`, as the int32 literal a register would hold. */
const pcLiteral = (e: Emitter, off: number): string => String((e.base + off) | 0);

function read(e: Emitter, r: number): string {
  if (r === 0) return '0';
  e.used.add(r);
  return `r${r}`;
}

/** Assignment to rd; writes to x0 are dropped (the value must have no side effects). */
function write(e: Emitter, r: number, value: string): string {
  if (r === 0) return '';
  e.used.add(r);
  e.written.add(r);
  return `r${r} = ${value};`;
}

/** Placeholder for the register write-back, filled in once every written register is known. */
const WRITE_BACK = '/*WB*/';

function exit(timeExpr: string, pcExpr: string): string {
  return `{ ${WRITE_BACK} h.time = ${timeExpr}; return ${pcExpr}; }`;
}

/** Exit that hands instruction `k` of the block (at RAM offset `off`) to the interpreter. */
function interpretAt(e: Emitter, k: number, off: number): string {
  return exit(k === 0 ? 't' : `t + ${k}`, String(((e.base + off) | 1) | 0));
}

function goTo(e: Emitter, off: number): string {
  const target = e.plan.index.get(off);
  return target !== undefined ? `{ b = ${target}; continue; }` : exit('t', pcLiteral(e, off));
}

function emitOpImm(e: Emitter, inst: number): string {
  const a = read(e, rs1(inst));
  const imm = immI(inst);
  const sh = imm & 31;
  switch (funct3(inst)) {
    case 0: return write(e, rd(inst), `(${a} + ${imm}) | 0`);
    case 1: return write(e, rd(inst), `${a} << ${sh}`);
    case 2: return write(e, rd(inst), `${a} < ${imm} ? 1 : 0`);
    case 3: return write(e, rd(inst), `(${a} >>> 0) < ${imm >>> 0} ? 1 : 0`);
    case 4: return write(e, rd(inst), `${a} ^ ${imm}`);
    case 5: return write(e, rd(inst), funct7(inst) === FUNCT7_ALT ? `${a} >> ${sh}` : `(${a} >>> ${sh}) | 0`);
    case 6: return write(e, rd(inst), `${a} | ${imm}`);
    default: return write(e, rd(inst), `${a} & ${imm}`);
  }
}

function emitOp(e: Emitter, inst: number): string {
  const a = read(e, rs1(inst));
  const b = read(e, rs2(inst));
  const f3 = funct3(inst);
  const f7 = funct7(inst);
  let v: string;
  if (f7 === FUNCT7_MULDIV) {
    v = ['Math.imul', 'mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu'][f3] + `(${a}, ${b})`;
  } else if (f7 === FUNCT7_ALT) {
    v = f3 === 0 ? `(${a} - ${b}) | 0` : `${a} >> ${b}`;
  } else {
    v = [
      `(${a} + ${b}) | 0`, `${a} << ${b}`, `${a} < ${b} ? 1 : 0`, `(${a} >>> 0) < (${b} >>> 0) ? 1 : 0`,
      `${a} ^ ${b}`, `(${a} >>> ${b}) | 0`, `${a} | ${b}`, `${a} & ${b}`,
    ][f3];
  }
  return write(e, rd(inst), v);
}

/** `o = RAM offset of the access`, then the exit taken when compiled code may not do it itself. */
function emitAddress(e: Emitter, base: number, imm: number, width: number, store: boolean, bail: string): string {
  const conditions = [`(o >>> 0) >= ${e.size}`];
  if (width > 1) conditions.push(`(o & ${width - 1}) !== 0`);
  if (store) conditions.push(`marks[o >>> ${GRANULE_SHIFT}] !== 0`);
  if (e.gated) conditions.push(`(present[o >>> ${PAGE_SHIFT + 5}] & (1 << (o >>> ${PAGE_SHIFT}))) === 0`);
  return `o = (${read(e, base)} + ${(imm - e.base) | 0}) | 0; if (${conditions.join(' || ')}) ${bail}`;
}

function emitLoad(e: Emitter, inst: number, bail: string): string {
  const f3 = funct3(inst);
  const width = 1 << (f3 & 3);
  const access = ['s8[o]', 's16[o >> 1]', 's32[o >> 2]', '', 'u8[o]', 'u16[o >> 1]'][f3];
  return emitAddress(e, rs1(inst), immI(inst), width, false, bail) + write(e, rd(inst), access);
}

function emitStore(e: Emitter, inst: number, bail: string): string {
  const f3 = funct3(inst);
  const width = 1 << f3;
  const target = ['u8[o]', 'u16[o >> 1]', 's32[o >> 2]'][f3];
  return emitAddress(e, rs1(inst), immS(inst), width, true, bail) +
    `${target} = ${read(e, rs2(inst))}; dirty[o >>> ${PAGE_SHIFT}] = 1;`;
}

/** Leave for the jalr target `a`, unless it is a return site compiled into this region. */
function indirectJump(e: Emitter): string {
  const sites = [...new Set(e.plan.returnSites)];
  if (sites.length === 0) return exit('t', 'a');
  const cases = sites.map((off) => `case ${pcLiteral(e, off)}: b = ${e.plan.index.get(off)}; continue;`).join(' ');
  return `switch (a) { ${cases} } ${exit('t', 'a')}`;
}

const BRANCH_CONDITIONS = ['===', '!==', '', '', '<', '>=', '<', '>='];

function emitBlock(e: Emitter, block: PlannedBlock, caseIndex: number): string {
  const out: string[] = [`case ${caseIndex}: {`];
  const n = block.insts.length;
  out.push(`if (t + ${n} > lim) ${interpretAt(e, 0, block.start)}`);
  let terminator = '';
  block.insts.forEach((inst, k) => {
    const off = block.start + 4 * k;
    const bail = interpretAt(e, k, off);
    switch (inst & 0x7f) {
      case OPC_LUI: out.push(write(e, rd(inst), String(immU(inst)))); break;
      case OPC_AUIPC: out.push(write(e, rd(inst), String((e.base + off + immU(inst)) | 0))); break;
      case OPC_OP_IMM: out.push(emitOpImm(e, inst)); break;
      case OPC_OP: out.push(emitOp(e, inst)); break;
      case OPC_LOAD: out.push(emitLoad(e, inst, bail)); break;
      case OPC_STORE: out.push(emitStore(e, inst, bail)); break;
      case OPC_MISC_MEM: break;
      case OPC_BRANCH: {
        const f3 = funct3(inst);
        const unsigned = f3 >= 6;
        const a = read(e, rs1(inst));
        const b = read(e, rs2(inst));
        const cond = unsigned ? `(${a} >>> 0) ${BRANCH_CONDITIONS[f3]} (${b} >>> 0)` : `${a} ${BRANCH_CONDITIONS[f3]} ${b}`;
        terminator = `if (${cond}) ${goTo(e, off + immB(inst))} ${goTo(e, off + 4)}`;
        break;
      }
      case OPC_JAL:
        out.push(write(e, rd(inst), pcLiteral(e, off + 4)));
        terminator = goTo(e, off + immJ(inst));
        break;
      case OPC_JALR:
        // Target first: rd may be rs1. A misaligned target traps in the interpreter.
        out.push(`a = (${read(e, rs1(inst))} + ${immI(inst)}) & -2; if ((a & 2) !== 0) ${bail}`);
        out.push(write(e, rd(inst), pcLiteral(e, off + 4)));
        terminator = indirectJump(e);
        break;
      default:
        throw new Error(`block compiler: unplanned instruction 0x${(inst >>> 0).toString(16)}`);
    }
  });
  out.push(`t += ${n};`);
  if (block.end === 'fall') terminator = goTo(e, block.next);
  if (block.end === 'interpret') terminator = exit('t', String(((e.base + block.next) | 1) | 0));
  out.push(terminator, '}');
  return out.join('\n');
}

/** Compile `plan` into a region function bound to hart `h`. */
export function compileRegion(h: Hart, plan: RegionPlan): RegionFn {
  const mem = h.mem;
  const e: Emitter = {
    plan, base: mem.base, size: mem.size, gated: mem.gate !== null, written: new Set(), used: new Set(),
  };
  const cases = plan.blocks.map((block, i) => emitBlock(e, block, i)).join('\n');
  const regs = [...e.used].sort((p, q) => p - q);
  const writeBack = [...e.written].sort((p, q) => p - q).map((r) => `x[${r}] = r${r};`).join(' ');
  const body = [
    regs.length > 0 ? `let ${regs.map((r) => `r${r} = x[${r}]`).join(', ')};` : '',
    'let t = h.time; const lim = h.limit; let b = 0, o = 0, a = 0;',
    'for (;;) switch (b) {',
    cases.replaceAll(WRITE_BACK, writeBack),
    '}',
  ].join('\n');
  const name = `guest_${(mem.base + plan.entry).toString(16)}`;
  const factory = new Function(
    'h', 'x', 'u8', 's8', 'u16', 's16', 's32', 'dirty', 'marks', 'present', 'helpers',
    `const { mulh, mulhsu, mulhu, div, divu, rem, remu } = helpers;\nreturn function ${name}() {\n${body}\n};`,
  ) as (...args: unknown[]) => RegionFn;
  return factory(
    h, h.x, mem.u8, mem.s8, mem.u16, mem.s16, mem.s32, mem.dirty, h.code.marks, mem.gate?.present ?? null, HELPERS,
  );
}
