// migrate_set_parameter between two real processes: a precopy that cannot
// converge under its downtime limit converges once the limit is raised
// while it runs, and the guest arrives intact; a capped push is freed while
// it runs. Bad parameters are refused by name and change nothing.
import { describe, expect, it, onTestFinished } from 'vitest';
import { PostcopyError } from '../../src/errors.ts';
import { PAGE_FRAME_HEADER_BYTES } from '../../src/protocol/page-frame.ts';
import { childGroup, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS, expectArrivedIntact, NEVER_FITS_MS, PACED_ROUNDS, sourceAndDestination, WRITTEN_8M_GUEST } from './processes.ts';

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`never happened: ${what}`);
}

async function refusal(call: Promise<unknown>): Promise<PostcopyError> {
  const err = await call.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PostcopyError);
  return err as PostcopyError;
}

describe('migrate_set_parameter', () => {
  it('a precopy that cannot converge does once its downtime limit is raised while it runs, and the guest arrives intact', async () => {
    const group = childGroup();
    onTestFinished(group.killAll);
    const { destination, source, control, to } = await sourceAndDestination(group, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);

    // Refused before a migration, and nothing changes.
    expect((await refusal(control.setParameters({ downtimeLimitMs: -1 }))).message).toMatch(/downtimeLimitMs must be a positive number \(got -1\)/);
    expect((await refusal(control.setParameters({ downtime: 5 } as never))).message).toMatch(/no parameter "downtime"; migrate_set_parameter needs one or more of downtimeLimitMs, maxBandwidth, maxPostcopyBandwidth/);
    expect((await refusal(control.setParameters({}))).code).toBe('MONITOR_ERR_COMMAND');
    // Set before `migrate`: what it starts with, as in QEMU.
    expect(await control.setParameters({ downtimeLimitMs: NEVER_FITS_MS })).toEqual({ downtimeLimitMs: NEVER_FITS_MS, maxBandwidth: 0, maxPostcopyBandwidth: 0 });

    await control.migrate({ to, mode: 'precopy', maxRounds: 100_000, ...PACED_ROUNDS, afterInstructions: 1_000_000 });
    await until('two precopy rounds', async () => ((await control.infoMigrate())?.precopyRounds ?? 0) >= 2);
    const stuck = await control.infoMigrate();
    expect(stuck?.status).toBe('precopy-active');
    expect(stuck?.downtimeLimitMs).toBe(NEVER_FITS_MS);
    expect(stuck?.expectedDowntimeMs).toBeGreaterThan(NEVER_FITS_MS);

    // Asked before the change that lets it end: a source that migrated exits, and a later ask finds nobody.
    const ended = control.migrationEnd();
    expect(await control.setParameters({ downtimeLimitMs: 3_600_000 })).toEqual({ downtimeLimitMs: 3_600_000, ...PACED_ROUNDS, maxPostcopyBandwidth: 0 });
    const done = await ended;
    expect(done.status).toBe('completed');
    expect(done.downtimeLimitMs).toBe(3_600_000);
    // It switched over as precopy: nothing was left for the destination to fetch.
    expect(done.postcopyRequests).toBe(0);
    await expectArrivedIntact(source, destination, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
  });

  it('precopy rounds keep under max-bandwidth while the guest runs, and finish once it is lifted', async () => {
    const group = childGroup();
    const cap = 4 * 1024 * 1024;
    // The bucket starts full (one full frame: 64 pages and a header) and may be overdrawn by one more frame.
    const slack = 2 * (64 * 4096 + PAGE_FRAME_HEADER_BYTES);
    onTestFinished(group.killAll);
    const { destination, source, control, to } = await sourceAndDestination(group, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
    // The first round alone is 16 MiB of data: about 4 s at the cap.
    await control.migrate({ to, mode: 'precopy', maxBandwidth: cap, afterInstructions: 1_000_000 });
    await until('a megabyte sent', async () => ((await control.infoMigrate())?.transferredBytes ?? 0) > 1024 * 1024);
    await new Promise((r) => setTimeout(r, 500));
    const capped = await control.infoMigrate();
    expect(capped?.status).toBe('precopy-active');
    expect(capped?.maxBandwidth).toBe(cap);
    // An upper bound on the rate, so a slow machine cannot fake it.
    expect(capped!.transferredBytes).toBeLessThanOrEqual((cap * capped!.totalMs) / 1000 + slack);

    const ended = control.migrationEnd();
    expect(await control.setParameters({ maxBandwidth: 0, downtimeLimitMs: 3_600_000 })).toEqual({ downtimeLimitMs: 3_600_000, maxBandwidth: 0, maxPostcopyBandwidth: 0 });
    const done = await ended;
    expect(done.status).toBe('completed');
    expect(done.postcopyRequests).toBe(0);
    // Capped all along, the 16 MiB round would still be going.
    expect(done.transferredBytes).toBeGreaterThan((cap * done.totalMs) / 1000 + slack);
    await expectArrivedIntact(source, destination, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
  });

  it('a push capped at 64 KiB/s is freed while it runs, and moves far more than the cap would have allowed', async () => {
    const group = childGroup();
    // A guest that has written its 8 MiB and barely runs after the switchover: nearly every page is the push's.
    const n = '3100000';
    const cap = 64 * 1024;
    onTestFinished(group.killAll);
    const { destination, source, control, to } = await sourceAndDestination(group, WRITTEN_8M_GUEST, n);
    await control.migrate({ to, mode: 'postcopy', maxPostcopyBandwidth: cap, afterInstructions: 3_000_000 });
    await until('postcopy running', async () => (await control.infoMigrate())?.status === 'postcopy-active');
    expect((await control.infoMigrate())?.maxPostcopyBandwidth).toBe(cap);
    expect((await refusal(control.setParameters({ maxPostcopyBandwidth: 1.5 }))).message).toMatch(/maxPostcopyBandwidth must be a positive integer/);
    const ended = control.migrationEnd();
    expect(await control.setParameters({ maxPostcopyBandwidth: 0 })).toEqual({ downtimeLimitMs: 300, maxBandwidth: 0, maxPostcopyBandwidth: 0 });
    const done = await ended;
    expect(done.status).toBe('completed');
    expect(done.maxPostcopyBandwidth).toBe(0);
    // Capped, the push's ~8 MiB would take ~128 s: more bytes than the cap allows in the time taken
    // (a lower bound on the time, so a slow machine cannot fake it) means the cap was lifted.
    const pushedBytes = (done.normalPages - done.postcopyRequests) * 4096;
    expect(pushedBytes).toBeGreaterThan((cap * done.totalMs) / 1000 + 1024 * 1024);
    await expectArrivedIntact(source, destination, WRITTEN_8M_GUEST, n);
  });
});
