// Which guest code goes into one compiled region: starting at an entry pc, the
// basic blocks reachable through static edges (branch targets, fall-throughs,
// jal targets) without leaving the entry's 4 KiB page. Keeping a region inside
// one page is what lets a store to that page invalidate it precisely.
import {
  FUNCT7_ALT, FUNCT7_MULDIV, OPC_AUIPC, OPC_BRANCH, OPC_JAL, OPC_JALR, OPC_LOAD, OPC_LUI,
  OPC_MISC_MEM, OPC_OP, OPC_OP_IMM, OPC_STORE, funct3, funct7, immB, immJ,
} from './decode.ts';
import { PAGE_SIZE } from './ram.ts';

/** How a block ends. */
export type BlockEnd =
  | 'branch'   // conditional branch: target and fall-through
  | 'jal'      // direct jump
  | 'jalr'     // indirect jump: leaves the region
  | 'fall'     // length cap or page end: continues at `next`
  | 'interpret'; // the instruction at `next` is one compiled code leaves to the interpreter

export interface PlannedBlock {
  /** RAM offset of the first instruction. */
  start: number;
  insts: number[];
  end: BlockEnd;
  /** RAM offset just past the last instruction. */
  next: number;
  /** RAM offset of the branch or jal target, when there is one. */
  target: number;
}

export interface RegionPlan {
  entry: number;
  blocks: PlannedBlock[];
  /** RAM offset -> index in `blocks`, for every block start compiled in. */
  index: Map<number, number>;
  /**
   * Blocks that start just after a linking jal/jalr in the region: where its
   * returns land, so a jalr can stay inside the region when it returns there.
   */
  returnSites: number[];
  /** RAM ranges [start, end) holding the compiled instructions. */
  sources: [number, number][];
}

const MAX_BLOCK_INSTS = 64;
const MAX_BLOCKS = 32;

type Kind = 'straight' | 'branch' | 'jal' | 'jalr' | 'interpret';

/**
 * What compiled code does with an instruction. Everything touching CSRs,
 * privilege, fence.i, or an illegal or misaligned-target encoding is left to
 * the interpreter, which raises the exact trap.
 */
export function classify(inst: number, off: number): Kind {
  const f3 = funct3(inst);
  switch (inst & 0x7f) {
    case OPC_LUI: case OPC_AUIPC:
      return 'straight';
    case OPC_OP_IMM:
      if (f3 === 1) return funct7(inst) === 0 ? 'straight' : 'interpret';
      if (f3 === 5) return funct7(inst) === 0 || funct7(inst) === FUNCT7_ALT ? 'straight' : 'interpret';
      return 'straight';
    case OPC_OP: {
      const f7 = funct7(inst);
      if (f7 === 0 || f7 === FUNCT7_MULDIV) return 'straight';
      return f7 === FUNCT7_ALT && (f3 === 0 || f3 === 5) ? 'straight' : 'interpret';
    }
    case OPC_LOAD:
      return f3 === 3 || f3 > 5 ? 'interpret' : 'straight';
    case OPC_STORE:
      return f3 > 2 ? 'interpret' : 'straight';
    case OPC_MISC_MEM:
      return f3 === 0 ? 'straight' : 'interpret';
    case OPC_BRANCH:
      if (f3 === 2 || f3 === 3) return 'interpret';
      return ((off + immB(inst)) & 3) === 0 ? 'branch' : 'interpret';
    case OPC_JAL:
      return ((off + immJ(inst)) & 3) === 0 ? 'jal' : 'interpret';
    case OPC_JALR:
      return f3 === 0 ? 'jalr' : 'interpret';
    default:
      return 'interpret';
  }
}

export function planRegion(code: Int32Array, entry: number): RegionPlan {
  const pageStart = entry - (entry % PAGE_SIZE);
  const pageEnd = pageStart + PAGE_SIZE;
  const inPage = (off: number): boolean => off >= pageStart && off < pageEnd;
  const blocks: PlannedBlock[] = [];
  const index = new Map<number, number>();
  const work = [entry];
  const returnSites: number[] = [];
  while (work.length > 0 && blocks.length < MAX_BLOCKS) {
    const start = work.shift()!;
    if (index.has(start)) continue;
    const insts: number[] = [];
    let off = start;
    let blockEnd: BlockEnd = 'fall';
    let target = -1;
    while (off < pageEnd && insts.length < MAX_BLOCK_INSTS) {
      const inst = code[off >>> 2];
      const kind = classify(inst, off);
      if (kind === 'interpret') {
        blockEnd = 'interpret';
        break;
      }
      insts.push(inst);
      off += 4;
      if (kind === 'straight') continue;
      blockEnd = kind;
      if (kind === 'branch') target = off - 4 + immB(inst);
      if (kind === 'jal') target = off - 4 + immJ(inst);
      break;
    }
    index.set(start, blocks.length);
    blocks.push({ start, insts, end: blockEnd, next: off, target });
    if (blockEnd === 'branch' || blockEnd === 'fall') {
      if (inPage(off)) work.push(off);
    }
    if ((blockEnd === 'branch' || blockEnd === 'jal') && inPage(target)) work.push(target);
    if ((blockEnd === 'jal' || blockEnd === 'jalr') && ((insts[insts.length - 1] >>> 7) & 31) !== 0 && inPage(off)) {
      returnSites.push(off);
      work.push(off);
    }
  }
  return {
    entry,
    blocks,
    index,
    returnSites: returnSites.filter((off) => index.has(off)),
    sources: blocks.map((b) => [b.start, b.next]),
  };
}
