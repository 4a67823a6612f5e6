// Runs a guest on the real Machine and collects what a test looks at.
import { readGuestImage } from '../../../src/guest/guest-images.ts';
import { Machine, type MachineOptions } from '../../../src/guest/machine.ts';
import type { FinisherState } from '../../../src/guest/devices/finisher.ts';

export interface GuestRun {
  console: string;
  exit: FinisherState | undefined;
  times: number[];
  stateHash: string;
}

export async function runGuest(
  guest: string,
  options: Partial<MachineOptions> & { until?: number } = {},
): Promise<GuestRun> {
  const machine = Machine.create({ image: readGuestImage(guest), ramSize: 64 * 1024 * 1024, backend: 'shared', ...options });
  try {
    await machine.runUntil(options.until ?? Infinity);
    const times = await machine.pause();
    return { console: machine.consoleText(), exit: machine.exit, times, stateHash: machine.stateHash() };
  } finally {
    await machine.close();
  }
}
