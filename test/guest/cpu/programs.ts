// Guest programs shared by the determinism tests and the benchmark.
import { MTIME, MTIMECMP } from './machine.ts';

/**
 * A never-ending loop mixing ALU, multiply, loads and stores over 16 KiB (four
 * pages), data-dependent branches, and a timer interrupt every ~3000 ticks
 * whose handler reprograms mtimecmp through the CLINT.
 */
export const WORKLOAD = `
  la t0, handler
  csrw mtvec, t0
  li t0, 0x80
  csrw mie, t0
  csrsi mstatus, 8
  li s0, ${MTIMECMP}
  li s5, ${MTIME}
  li t1, 5000
  sw t1, 0(s0)
  sw zero, 4(s0)
  la s1, buf
  li s2, 0
  li s3, 0
loop:
  slli t2, s2, 2
  li t3, 0x3ffc
  and t2, t2, t3
  add t3, s1, t2
  lw t4, 0(t3)
  xor t4, t4, s2
  mul t5, t4, s2
  add t4, t4, t5
  sw t4, 0(t3)
  srli a0, t4, 3
  andi a0, a0, 1
  beqz a0, skip
  sb t4, 1(t3)
  lh a1, 2(t3)
  add s3, s3, a1
  divu a3, s3, s2
  rem a4, s3, s2
skip:
  addi s2, s2, 1
  j loop
handler:
  addi s4, s4, 1
  lw a2, 0(s5)
  addi a2, a2, 1500
  addi a2, a2, 1500
  sw a2, 0(s0)
  mret
  .space 3000
buf: .word 0
`;
