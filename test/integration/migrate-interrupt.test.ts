// Ctrl-C on `postcopy migrate`, as on virsh migrate: before the switchover it
// cancels the migration and the guest runs on at the source, losing nothing;
// after it the source refuses, the command says so and keeps following, and
// a second Ctrl-C ends the command while the migration finishes without it.
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  childGroup,
  DIRTYING_GUEST,
  DIRTYING_INSTRUCTIONS,
  expectArrivedIntact,
  expectMigratesIntact,
  PACED_ROUNDS,
  PlainPostcopy,
  sourceAndDestination,
  untilMigration,
  WRITTEN_8M_GUEST,
} from './processes.ts';

/** `postcopy migrate ARGS`, no terminal. */
function migrateCommand(args: string[], token: string): PlainPostcopy {
  const migrate = new PlainPostcopy(['migrate', ...args], { POSTCOPY_TOKEN: token, POSTCOPY_LOG: 'warn' });
  onTestFinished(() => void migrate.process.kill('SIGKILL'));
  return migrate;
}

describe('postcopy migrate, interrupted', () => {
  it('cancels a precopy, and the guest runs on at the source with nothing lost', async () => {
    const group = childGroup();
    onTestFinished(group.killAll);
    const { source, control, controlUrl, to } = await sourceAndDestination(group, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
    // 1 ms never fits a round of this guest's 4096 dirty pages (it takes ~300): precopy runs until cancelled.
    const migrate = migrateCommand(
      ['--source', controlUrl, '--to', to, '--mode', 'precopy', '--downtime-limit', '1', '--rounds', '10000', '--max-bandwidth', String(PACED_ROUNDS.maxBandwidth), '--after-instructions', '1000000'],
      group.token,
    );
    await untilMigration(control, 'precopy-active', { rounds: 1, driver: migrate });

    migrate.process.kill('SIGINT');
    expect(await migrate.exit()).toEqual({ code: 2, signal: null });
    expect(migrate.stderr).toContain('postcopy migrate: interrupted: cancelling the migration');
    expect(migrate.stderr).toMatch(/postcopy migrate: migration cancelled: .*cancelled by the user; the guest keeps running here \[MIGRATE_ERR_CANCELLED\]/);
    expect(migrate.stdout).toMatch(/Migration status: cancelled/);
    await expectMigratesIntact(group, source, control, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
  });

  it('cannot cancel a postcopy, says so and follows it; a second interrupt leaves it to finish, intact', async () => {
    const group = childGroup();
    onTestFinished(group.killAll);
    const end = '3100000';
    const { source, destination, control, controlUrl, to } = await sourceAndDestination(group, WRITTEN_8M_GUEST, end);
    // 8 MiB of data pages at 1 MiB/s: seconds of postcopy-active to interrupt in.
    const migrate = migrateCommand(['--source', controlUrl, '--to', to, '--mode', 'postcopy', '--after-instructions', '3000000', '--max-postcopy-bandwidth', '1M'], group.token);
    await untilMigration(control, 'postcopy-active', { driver: migrate });

    migrate.process.kill('SIGINT');
    await expect.poll(() => migrate.stderr, { timeout: 30_000 }).toMatch(/postcopy migrate: not cancelled: cannot cancel while postcopy-active: the guest already runs on the destination.*\[MONITOR_ERR_COMMAND\]; following it to its end/);
    expect(migrate.process.exitCode).toBeNull();
    migrate.process.kill('SIGINT');
    expect(await migrate.exit()).toEqual({ code: null, signal: 'SIGINT' });

    expect((await control.migrationEnd()).status).toBe('completed');
    await expectArrivedIntact(source, destination, WRITTEN_8M_GUEST, end);
  });
});
