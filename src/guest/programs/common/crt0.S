/* Entry for every hart, as QEMU's `-bios none -kernel` boots: a0 = hartid,
   a1 = parameter block (ours) or device tree (QEMU). The loader zero-fills
   .bss, so no hart clears it here (several harts would race doing so). */
  .section .text.init
  .globl _start
_start:
  .option push
  .option norelax
  la gp, __global_pointer$
  .option pop
  csrw mie, zero
  li t0, 4
  bgeu a0, t0, park
  la sp, __stacks_top
  slli t1, a0, 16
  sub sp, sp, t1
  la t0, trap_unexpected
  csrw mtvec, t0
  call main
  call hart_exit
park:
  wfi
  j park

/* A trap nobody expected: report it and fail, rather than loop silently. */
  .align 2
trap_unexpected:
  csrr a0, mcause
  csrr a1, mepc
  csrr a2, mtval
  call unexpected_trap
  j park
