// Precopy of a guest that dirties memory faster than the link can carry it
// never converges: the source must say so, keep the guest running, and lose
// nothing — proven by migrating the same guest again afterwards, with
// postcopy, and matching a run that never migrated.
// The guest and the limit: DIRTYING_GUEST and NEVER_FITS_MS in processes.ts.
import { describe, expect, it, onTestFinished } from 'vitest';
import { childGroup, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS, expectMigratesIntact, NEVER_FITS_MS, PACED_ROUNDS, sourceAndDestination } from './processes.ts';

describe('precopy that cannot converge', () => {
  it('reports non-convergence, leaves the guest running on the source, and loses nothing', async () => {
    const group = childGroup();
    onTestFinished(group.killAll);
    const { destination: first, source, control, controlUrl, to } = await sourceAndDestination(group, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);

    await control.migrate({ to, mode: 'precopy', maxRounds: 3, downtimeLimitMs: NEVER_FITS_MS, ...PACED_ROUNDS, afterInstructions: 1_000_000 });
    const precopy = await control.migrationEnd();
    expect(precopy.status).toBe('cancelled');
    expect(precopy.precopyRounds).toBe(3);
    expect(precopy.error).toMatch(/did not converge after 3 rounds/);
    expect(precopy.error).toMatch(/--mode hybrid or postcopy/);
    // What the last round measured, as QEMU's expected-downtime: over the limit, or it would have switched over.
    expect(precopy.expectedDowntimeMs).toBeGreaterThan(NEVER_FITS_MS);
    expect(await first.exit()).not.toBe(0);
    // The destination heard the reason, not just its page channels closing.
    expect((await first.waitFor('failed')).message).toMatch(/the source cancelled the migration: precopy did not converge/);
    const info = (await (await fetch(new URL('/info', controlUrl), { headers: { authorization: `Bearer ${group.token}` } })).json()) as { guest: { runningHere: boolean } };
    expect(info.guest.runningHere).toBe(true);

    await expectMigratesIntact(group, source, control, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
  });

  it('is cancelled at once while its destination has stopped reading, and loses nothing', async () => {
    const group = childGroup();
    onTestFinished(group.killAll);
    const { destination: stopped, source, control, to } = await sourceAndDestination(group, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
    await control.migrate({ to, mode: 'precopy', maxRounds: 100_000, downtimeLimitMs: NEVER_FITS_MS, ...PACED_ROUNDS, afterInstructions: 1_000_000 });
    for (let i = 0; (await control.infoMigrate())?.precopyRounds === 0; i++) {
      if (i > 600) throw new Error('no precopy round ended');
      await new Promise((r) => setTimeout(r, 50));
    }
    // Frozen, it reads nothing: the source's send window fills, or a precopy-sync goes unanswered.
    stopped.process.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 300));
    await control.cancel();
    const ended = await control.migrationEnd();
    stopped.process.kill('SIGKILL');
    expect(ended.status).toBe('cancelled');
    expect(ended.error).toMatch(/migration cancelled: cancelled by the user; the guest keeps running here/);
    await expectMigratesIntact(group, source, control, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
  });
});
