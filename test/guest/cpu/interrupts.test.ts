import { describe, expect, it } from 'vitest';
import { reg } from './asm.ts';
import { ENGINES, machine } from './machine.ts';
import { FINISH } from './run.ts';

/** Handler records the time it first sees, mcause and mepc in s2, s0, s1, then finishes. */
const HANDLER = `
handler:
csrr s2, time
csrr s0, mcause
csrr s1, mepc
${FINISH}`;

describe.each(ENGINES)('interrupts and wfi (%s engine)', (engine) => {
  it('takes the timer interrupt at exactly mtimecmp', () => {
    const m = machine(`
la t0, handler
csrw mtvec, t0
li t0, 0x80
csrw mie, t0
csrsi mstatus, 8
loop: addi a0, a0, 1
j loop
${HANDLER}`, { engine });
    m.clint.mtimecmp = 1000;
    expect(m.hart.run(10_000)).toBe('mmio-stop');
    expect(m.hart.x[reg('s0')]).toBe(0x80000007 | 0);
    expect(m.hart.x[reg('s2')]).toBe(1000);
    // 7 set-up instructions, then 2 per iteration: the interrupt lands between them.
    expect(m.hart.x[reg('a0')]).toBe(Math.ceil((1000 - 7) / 2));
  });

  it('wfi fast-forwards to mtimecmp and the interrupt returns past it', () => {
    const m = machine(`
la t0, handler
csrw mtvec, t0
li t0, 0x80
csrw mie, t0
csrsi mstatus, 8
at: wfi
${HANDLER}`, { engine });
    m.clint.mtimecmp = 5_000_000;
    expect(m.hart.run(10_000_000)).toBe('mmio-stop');
    expect(m.hart.x[reg('s0')]).toBe(0x80000007 | 0);
    expect(m.hart.x[reg('s1')] >>> 0).toBe(m.program.labels.get('at')! + 4);
    // The wait stands for wfi's tick: it retires at mtimecmp, then the interrupt is taken.
    expect(m.hart.x[reg('s2')]).toBe(5_000_000);
  });

  it('wfi resumes with MIE clear when the timer is enabled in mie, without trapping', () => {
    const m = machine(`
li t0, 0x80
csrw mie, t0
wfi
csrr a0, time
csrr a1, mcause
${FINISH}`, { engine });
    m.clint.mtimecmp = 777;
    expect(m.hart.run(10_000)).toBe('mmio-stop');
    expect(m.hart.x[reg('a0')]).toBe(777);
    expect(m.hart.x[reg('a1')]).toBe(0);
  });

  it('wfi with nothing enabled halts without moving pc or time', () => {
    const m = machine('nop\nat: wfi\nnop', { engine });
    expect(m.hart.run(1000)).toBe('wfi-halt');
    expect(m.hart.pc).toBe(m.program.labels.get('at'));
    expect(m.hart.time).toBe(1);
  });

  it('a wfi wait longer than the budget stops at exactly the budget and carries on next run', () => {
    const m = machine('li t0, 0x80\ncsrw mie, t0\nat: wfi\ncsrr a0, time\n' + FINISH, { engine });
    m.clint.mtimecmp = 1_000;
    expect(m.hart.run(600)).toBe('budget');
    expect(m.hart.time).toBe(600);
    expect(m.hart.pc).toBe(m.program.labels.get('at'));
    expect(m.hart.run(600)).toBe('mmio-stop');
    expect(m.hart.x[reg('a0')]).toBe(1000);
  });

  it('a software interrupt wins over a timer interrupt pending at the same time', () => {
    const m = machine(`
la t0, handler
csrw mtvec, t0
li t0, 0x88
csrw mie, t0
csrsi mstatus, 8
nop
${HANDLER}`, { engine });
    m.clint.mtimecmp = 0;
    m.clint.msip = true;
    expect(m.hart.run(1000)).toBe('mmio-stop');
    expect(m.hart.x[reg('s0')]).toBe(0x80000003 | 0);
  });

  it('vectored mtvec sends interrupts to base + 4 × cause and exceptions to base', () => {
    const m = machine(`
la t0, vectors
ori t0, t0, 1
csrw mtvec, t0
li t0, 0x80
csrw mie, t0
csrsi mstatus, 8
ecall
wfi
self: j self
.space 4
vectors: j exception
.space 24
j timer
exception:
csrr a0, mepc
addi a0, a0, 4
csrw mepc, a0
li a1, 1
mret
timer:
li a2, 1
${FINISH}`, { engine });
    m.clint.mtimecmp = 100;
    expect(m.hart.run(1000)).toBe('mmio-stop');
    expect(m.hart.x[reg('a1')]).toBe(1);
    expect(m.hart.x[reg('a2')]).toBe(1);
  });

  it('mip shows the CLINT lines and ignores writes', () => {
    const m = machine('csrw mip, zero\ncsrr a0, mip\n' + FINISH, { engine });
    m.clint.mtimecmp = 0;
    m.clint.msip = true;
    expect(m.hart.run(1000)).toBe('mmio-stop');
    expect(m.hart.x[reg('a0')]).toBe(0x88);
  });
});
