// RV32 instruction fields and major opcodes, shared by the interpreter and the
// block compiler so both read an encoding the same way.

export const OPC_LOAD = 0x03;
export const OPC_MISC_MEM = 0x0f;
export const OPC_OP_IMM = 0x13;
export const OPC_AUIPC = 0x17;
export const OPC_STORE = 0x23;
export const OPC_OP = 0x33;
export const OPC_LUI = 0x37;
export const OPC_BRANCH = 0x63;
export const OPC_JALR = 0x67;
export const OPC_JAL = 0x6f;
export const OPC_SYSTEM = 0x73;

/** funct7 of the M extension's register-register instructions. */
export const FUNCT7_MULDIV = 0x01;
/** funct7 selecting sub / sra / srai. */
export const FUNCT7_ALT = 0x20;

// Whole encodings of the SYSTEM instructions that have no operands.
export const INST_ECALL = 0x00000073;
export const INST_EBREAK = 0x00100073;
export const INST_MRET = 0x30200073;
export const INST_WFI = 0x10500073;

export const opcode = (i: number): number => i & 0x7f;
export const rd = (i: number): number => (i >>> 7) & 31;
export const funct3 = (i: number): number => (i >>> 12) & 7;
export const rs1 = (i: number): number => (i >>> 15) & 31;
export const rs2 = (i: number): number => (i >>> 20) & 31;
export const funct7 = (i: number): number => i >>> 25;
/** The 12-bit CSR number of a Zicsr instruction. */
export const csrNumber = (i: number): number => i >>> 20;

export const immI = (i: number): number => i >> 20;
export const immS = (i: number): number => ((i >> 25) << 5) | ((i >>> 7) & 31);
export const immB = (i: number): number =>
  ((i >> 31) << 12) | (((i >>> 7) & 1) << 11) | (((i >>> 25) & 63) << 5) | (((i >>> 8) & 15) << 1);
export const immU = (i: number): number => i & -4096;
export const immJ = (i: number): number =>
  ((i >> 31) << 20) | (((i >>> 12) & 255) << 12) | (((i >>> 20) & 1) << 11) | (((i >>> 21) & 1023) << 1);
