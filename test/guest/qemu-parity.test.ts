// The same images give the same console output on QEMU's virt machine as on
// ours. diskio is left out: QEMU has no device at our block device's address.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { resolveGuestImage } from '../../src/guest/guest-images.ts';
import { runGuest } from './helpers/run-guest.ts';
import { missingTool } from './helpers/tools.ts';

const run = promisify(execFile);
const qemuMissing = missingTool('qemu-system-riscv32');
if (qemuMissing) console.warn(`QEMU parity skipped: ${qemuMissing}`);
console.warn('QEMU parity: diskio is not compared, QEMU virt has no device at 0x10200000 (our block device)');

async function onQemu(guest: string): Promise<{ stdout: string; exitCode: number }> {
  const args = ['-M', 'virt', '-bios', 'none', '-kernel', resolveGuestImage(guest), '-nographic', '-m', '64M'];
  try {
    const { stdout } = await run('qemu-system-riscv32', args, { encoding: 'latin1', timeout: 120_000, maxBuffer: 16 << 20 });
    return { stdout, exitCode: 0 };
  } catch (err) {
    const failed = err as { stdout?: string; code?: number };
    if (typeof failed.code !== 'number' || failed.stdout === undefined) throw err;
    return { stdout: failed.stdout, exitCode: failed.code };
  }
}

describe.skipIf(qemuMissing !== undefined)('QEMU parity (qemu-system-riscv32 -M virt -bios none -kernel)', () => {
  for (const guest of ['selftest', 'memwork', 'life']) {
    it(`${guest} prints the same console output and exits the same way`, async () => {
      const [qemu, ours] = await Promise.all([onQemu(guest), runGuest(guest)]);
      expect(ours.console.length).toBeGreaterThan(0);
      expect(ours.console).toBe(qemu.stdout);
      expect(ours.exit?.code ?? -1).toBe(qemu.exitCode);
    });
  }
});
