// Auto-converge (QEMU's capability) between two real processes: a guest that
// dirties memory faster than precopy moves it is slowed round by round until
// a round leaves little enough to send, and arrives intact; a precopy that
// gives up first leaves the guest here running at full speed again.
import { describe, expect, it, onTestFinished } from 'vitest';
import { childGroup, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS, expectArrivedIntact, expectMigratesIntact, NEVER_FITS_MS, PACED_ROUNDS, sourceAndDestination } from './processes.ts';

describe('precopy with auto-converge', () => {
  it('slows the vCPUs until a round fits the downtime limit; the guest arrives intact', async () => {
    const group = childGroup();
    onTestFinished(group.killAll);
    const { destination, source, control, to } = await sourceAndDestination(group, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
    await control.migrate({ to, mode: 'precopy', downtimeLimitMs: 1, maxRounds: 30, autoConverge: true, afterInstructions: 1_000_000 });
    const done = await control.migrationEnd();
    expect(done.status).toBe('completed');
    // 20% after the first round, then 10% more a round: at least one step was taken.
    expect(done.precopyRounds).toBeGreaterThan(1);
    expect(done.postcopyRequests).toBe(0);
    await expectArrivedIntact(source, destination, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
  });

  it('gives the guest its full speed back when precopy gives up, and loses nothing', async () => {
    const group = childGroup();
    onTestFinished(group.killAll);
    const { source, control, controlUrl, to } = await sourceAndDestination(group, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
    const guestInfo = async (): Promise<{ cpuThrottlePercentage: number; runningHere: boolean }> =>
      ((await (await fetch(new URL('/info', controlUrl), { headers: { authorization: `Bearer ${group.token}` } })).json()) as { guest: { cpuThrottlePercentage: number; runningHere: boolean } }).guest;
    await control.migrate({ to, mode: 'precopy', downtimeLimitMs: NEVER_FITS_MS, maxRounds: 3, autoConverge: true, ...PACED_ROUNDS, afterInstructions: 1_000_000 });
    const ended = await control.migrationEnd();
    expect(ended.status).toBe('cancelled');
    expect(ended.error).toMatch(/did not converge after 3 rounds/);
    // Slowed to 20%, then 30%, before the third round gave up: now free again.
    expect(await guestInfo()).toMatchObject({ cpuThrottlePercentage: 0, runningHere: true });
    expect(ended.cpuThrottlePercentage).toBe(0);
    await expectMigratesIntact(group, source, control, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
  });
});
