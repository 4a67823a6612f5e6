// Trap paths checked against QEMU (fixtures/trap-check.S): ecall, ebreak,
// illegal encodings, CSR faults, a load access fault, mret's MIE/MPIE stack and
// a timer interrupt out of wfi in direct and vectored mode. EXPECTED is what
// qemu-system-riscv32 7.2 -M virt prints for the same binary; when QEMU is
// installed the test also checks that it still prints exactly that.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { missingTool } from '../helpers/tools.ts';
import { ENGINES, machine, RAM_BASE } from './machine.ts';

// id mcause mepc-_start mtval mstatus&0x1888, one line per trap.
const EXPECTED = `00000001 0000000b 00000014 00000000 00001800 
00000002 00000003 0000001c 00000000 00001800 
00000003 00000002 00000024 ffffffff 00001800 
00000004 00000002 0000002c 00000000 00001800 
00000005 00000002 00000034 f1451073 00001800 
00000006 00000002 0000003c 7c002573 00001800 
00000007 00000005 00000048 00000400 00001800 
00000008 0000000b 00000054 00000000 00001880 
00000088 
00000009 80000007 00000084 00000000 00001880 
0000000a 80000007 000000b4 00000000 00001880 
`;

const binary = fileURLToPath(new URL('./fixtures/trap-check.bin', import.meta.url));
const qemuMissing = missingTool('qemu-system-riscv32');
if (qemuMissing) console.warn(`trap parity: QEMU run skipped (${qemuMissing}); the core is still checked against the recorded QEMU output`);

describe.each(ENGINES)('trap paths agree with QEMU (%s engine)', (engine) => {
  it('prints the trap lines QEMU prints and reports pass', () => {
    const bytes = readFileSync(binary);
    const words = new Uint32Array(Math.ceil(bytes.length / 4));
    new Uint8Array(words.buffer).set(bytes);
    const m = machine({ words, base: RAM_BASE, labels: new Map() }, { engine });
    expect(m.hart.run(1_000_000)).toBe('mmio-stop');
    const uart = m.mmioLog
      .filter((e) => e.startsWith('store1 10000000 '))
      .map((e) => String.fromCharCode(parseInt(e.split(' ')[2]!, 16)))
      .join('');
    expect(uart).toBe(EXPECTED);
    expect(m.mmioLog.at(-1)).toBe('finish 5555');
  });
});

// trap-check writes the UART without polling LSR (the hart-only harness has
// no UART to poll), so QEMU's console goes to a file: on a pipe or socket that
// would block, QEMU's 16550 drops the bytes written meanwhile, as a real one does.
async function qemuConsole(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'postcopy-trap-check-'));
  const out = path.join(dir, 'console.txt');
  const fd = openSync(out, 'w');
  try {
    const args = ['-M', 'virt', '-bios', 'none', '-kernel', binary, '-nographic', '-m', '64M'];
    const child = spawn('qemu-system-riscv32', args, { stdio: ['ignore', fd, 'inherit'], timeout: 60_000 });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', resolve);
    });
    expect(code).toBe(0);
    return readFileSync(out, 'latin1');
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(qemuMissing !== undefined)('trap-check on qemu-system-riscv32 -M virt', () => {
  it('prints the recorded trap lines', async () => {
    expect(await qemuConsole()).toBe(EXPECTED);
  });
});
