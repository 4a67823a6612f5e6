import { describe, expect, it } from 'vitest';
import { reg } from './asm.ts';
import { ENGINES } from './machine.ts';
import { runSnippet } from './run.ts';

const INT_MIN = -0x8000_0000;
const INT_MAX = 0x7fff_ffff;

/** [what, snippet, expected register values (int32)] */
const CASES: [string, string, Record<string, number>][] = [
  ['lui', 'lui a0, 0xfffff\nlui a1, 0x12345', { a0: -4096, a1: 0x12345000 }],
  ['auipc', 'auipc a0, 0\nauipc a1, 1', { a0: INT_MIN, a1: INT_MIN + 4 + 4096 }],
  ['addi sign-extends its immediate and wraps', 'li a0, 0x7fffffff\naddi a1, a0, 1\naddi a2, zero, -2048', { a1: INT_MIN, a2: -2048 }],
  ['slti / sltiu compare signed / unsigned', 'li a0, -1\nslti a1, a0, 0\nsltiu a2, a0, 1\nsltiu a3, zero, -1\nslti a4, zero, -1',
    { a1: 1, a2: 0, a3: 1, a4: 0 }],
  ['xori / ori / andi', 'li a0, 0x0f0\nxori a1, a0, -1\nori a2, a0, 0x00f\nandi a3, a0, 0x030', { a1: ~0xf0, a2: 0xff, a3: 0x30 }],
  ['slli / srli / srai', 'li a0, 0x80000001\nslli a1, a0, 1\nsrli a2, a0, 31\nsrai a3, a0, 31\nsrai a4, a0, 0',
    { a1: 2, a2: 1, a3: -1, a4: INT_MIN + 1 }],
  ['add / sub wrap', 'li a0, 0x7fffffff\nli a1, 1\nadd a2, a0, a1\nsub a3, a2, a1\nsub a4, zero, a2',
    { a2: INT_MIN, a3: INT_MAX, a4: INT_MIN }],
  ['shifts use only the low 5 bits of rs2', 'li a0, -8\nli a1, 33\nsll a2, a0, a1\nsrl a3, a0, a1\nsra a4, a0, a1\nli a1, 32\nsll a5, a0, a1',
    { a2: -16, a3: 0x7ffffffc, a4: -4, a5: -8 }],
  ['slt / sltu', 'li a0, -1\nli a1, 1\nslt a2, a0, a1\nsltu a3, a0, a1\nslt a4, a1, a0\nsltu a5, a1, a0',
    { a2: 1, a3: 0, a4: 0, a5: 1 }],
  ['xor / or / and', 'li a0, 0x0ff0\nli a1, 0x00ff\nxor a2, a0, a1\nor a3, a0, a1\nand a4, a0, a1', { a2: 0xf0f, a3: 0xfff, a4: 0xf0 }],
  ['writes to x0 are ignored', 'li a0, 5\naddi zero, a0, 1\nadd zero, a0, a0\nlui zero, 1\nmv a1, zero', { a1: 0, zero: 0 }],
  ['mul keeps the low word', 'li a0, 0x12345678\nli a1, 0x9abcdef0\nmul a2, a0, a1\nli a3, -3\nli a4, 7\nmul a5, a3, a4',
    { a2: Math.imul(0x12345678, 0x9abcdef0 | 0), a5: -21 }],
  ['mulh / mulhsu / mulhu', 'li a0, -2\nli a1, 3\nmulh a2, a0, a1\nmulhsu a3, a0, a1\nmulhu a4, a0, a1\nmulhsu a5, a1, a0',
    { a2: -1, a3: -1, a4: 2, a5: 2 }],
  ['mulh of INT_MIN × INT_MIN', 'li a0, 0x80000000\nmulh a1, a0, a0\nmulhu a2, a0, a0\nmulhsu a3, a0, a0\nmul a4, a0, a0',
    { a1: 0x40000000, a2: 0x40000000, a3: -0x40000000, a4: 0 }],
  ['mulhu of all-ones', 'li a0, -1\nmulhu a1, a0, a0\nmulh a2, a0, a0\nmulhsu a3, a0, a0', { a1: -2, a2: 0, a3: -1 }],
  ['div / rem round toward zero', 'li a0, -7\nli a1, 2\ndiv a2, a0, a1\nrem a3, a0, a1\ndivu a4, a0, a1\nremu a5, a0, a1',
    { a2: -3, a3: -1, a4: 0x7ffffffc, a5: 1 }],
  ['division by zero', 'li a0, -7\ndiv a2, a0, zero\ndivu a3, a0, zero\nrem a4, a0, zero\nremu a5, a0, zero',
    { a2: -1, a3: -1, a4: -7, a5: -7 }],
  ['INT_MIN / -1 overflows to INT_MIN with remainder 0', 'li a0, 0x80000000\nli a1, -1\ndiv a2, a0, a1\nrem a3, a0, a1\ndivu a4, a0, a1\nremu a5, a0, a1',
    { a2: INT_MIN, a3: 0, a4: 0, a5: INT_MIN }],
  ['loads sign- or zero-extend', `la a0, data
lb a1, 0(a0)
lbu a2, 0(a0)
lh a3, 0(a0)
lhu a4, 0(a0)
lw a5, 0(a0)
lb a6, 3(a0)
lh a7, 2(a0)
j done
data: .word 0x7ffe80ff
done: nop`, { a1: -1, a2: 0xff, a3: -32513, a4: 0x80ff, a5: 0x7ffe80ff, a6: 0x7f, a7: 0x7ffe }],
  ['stores write only their width', `la a0, data
li a1, 0x11223344
sb a1, 1(a0)
sh a1, 2(a0)
lw a2, 0(a0)
sw a1, 4(a0)
lw a3, 4(a0)
j done
data: .word 0xaaaaaaaa
.word 0
done: nop`, { a2: 0x334444aa, a3: 0x11223344 }],
  ['branches compare signed and unsigned', `li a0, -1
li a1, 1
li a2, 0
beq a0, a0, L1
addi a2, a2, 1
L1: bne a0, a1, L2
addi a2, a2, 2
L2: blt a0, a1, L3
addi a2, a2, 4
L3: bge a1, a0, L4
addi a2, a2, 8
L4: bltu a1, a0, L5
addi a2, a2, 16
L5: bgeu a0, a1, L6
addi a2, a2, 32
L6: beq a0, a1, L7
bne a0, a0, L7
blt a1, a0, L7
bge a0, a1, L7
bltu a0, a1, L7
bgeu a1, a0, L7
addi a2, a2, 64
L7: nop`, { a2: 64 }],
  ['jal and jalr link pc + 4; jalr clears bit 0', `jal ra, f
mv a1, a0
j done
f: auipc a0, 0
la t0, g
addi t0, t0, 1
jalr t1, 0(t0)
g: sub a0, t1, a0
ret
done: nop`, { a1: 20 }],
  ['jalr with rd == rs1 jumps to the old value', `la a0, t
jalr a0, 0(a0)
li a1, 1
t: auipc a2, 0
sub a3, a0, a2`, { a1: 0, a3: -4 }],
  ['fence and fence.i are no-ops for registers', 'li a0, 3\nfence\nfence.i\naddi a0, a0, 1', { a0: 4 }],
];

describe.each(ENGINES)('RV32IM instructions (%s engine)', (engine) => {
  it.each(CASES)('%s', (_what, source, expected) => {
    const m = runSnippet(source, engine);
    for (const [name, v] of Object.entries(expected)) {
      expect(m.hart.x[reg(name)], name).toBe(v | 0);
    }
  });
});
