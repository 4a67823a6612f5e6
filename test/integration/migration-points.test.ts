// Migration at different points of a run, including right after boot (almost
// every page missing on the destination) and while diskio has DMA in flight
// (the block device's read(2)/write(2) into guest RAM faults inside the kernel).
import { describe, expect, it } from 'vitest';
import { demo } from './processes.ts';

describe('the switchover point does not change the result', () => {
  it.each([1, 300_000, 2_500_000])('life migrated after %i instructions', async (k) => {
    const s = await demo(['--guest', 'life', '--guest-args', 'gens=0', '--ram', '32M', '--after-instructions', String(k), '--instructions', '5000000']);
    expect(s.verified).toBe(true);
  });

  // Whether its first touches fault or find the push there first is a race:
  // after one instruction RAM is the image and zero pages, which the push
  // sends in a few milliseconds, and on a fast host it sometimes wins them
  // all. That every page went over after the switchover is not a race.
  it('a guest migrated right after boot, every page still on the source, ends where an unmigrated one does', async () => {
    const ram = 64 << 20;
    const s = await demo(['--guest', 'memwork', '--guest-args', 'wss=2M passes=0', '--ram', String(ram), '--after-instructions', '1', '--instructions', '3000000']);
    expect(s.verified).toBe(true);
    expect(s.precopyRounds).toBe(0);
    expect(s.zeroPages + s.normalPages).toBeGreaterThanOrEqual(ram / 4096);
  });

  it.each([
    ['dev', 200_000],
    ['dev', 1_100_000],
    ['sim', 700_000],
  ] as const)('diskio with DMA in flight, userfaultfd %s, migrated after %i instructions', async (uffd, k) => {
    const s = await demo(['--guest', 'diskio', '--guest-args', 'rounds=0 blocks=16 sectors=8', '--ram', '32M', '--uffd', uffd, '--after-instructions', String(k), '--instructions', '3000000']);
    expect(s.verified).toBe(true);
  });
});
