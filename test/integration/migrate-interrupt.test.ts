// Ctrl-C on `postcopy migrate`, as on virsh migrate: before the switchover it
// cancels the migration and the guest runs on at the source, losing nothing;
// after it the source refuses, the command says so and keeps following, and
// a second Ctrl-C ends the command while the migration finishes without it.
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  BIN,
  childGroup,
  DIRTYING_GUEST,
  DIRTYING_INSTRUCTIONS,
  expectArrivedIntact,
  expectMigratesIntact,
  PACED_ROUNDS,
  sourceAndDestination,
  WRITTEN_8M_GUEST,
} from './processes.ts';
import type { ControlClient } from '../../src/cli/control-client.ts';
import type { MigrationState } from '../../src/protocol/state.ts';

/** `postcopy migrate ARGS` without a terminal, its output kept. */
class MigrateCommand {
  readonly process: ChildProcess;
  stdout = '';
  stderr = '';
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], token: string) {
    this.process = spawn(process.execPath, [BIN, 'migrate', ...args], { env: { ...process.env, POSTCOPY_TOKEN: token, POSTCOPY_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.process.stdout!.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.process.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    // 'close', not 'exit': at 'exit' the last lines may still be in the pipes.
    this.exited = new Promise((resolve) => this.process.once('close', (code, signal) => resolve({ code, signal })));
  }

  exit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exited;
  }
}

/** Once the source reports `status` (and `more` of its precopy rounds); throws if the command ended first. */
async function untilStatus(control: ControlClient, migrate: MigrateCommand, status: MigrationState, more: (rounds: number) => boolean = () => true): Promise<void> {
  for (;;) {
    if (migrate.process.exitCode !== null || migrate.process.signalCode !== null) {
      throw new Error(`postcopy migrate ended before the migration was ${status}:\n${migrate.stderr}`);
    }
    const info = await control.infoMigrate();
    if (info !== null && info.status === status && more(info.precopyRounds)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('postcopy migrate, interrupted', () => {
  it('cancels a precopy, and the guest runs on at the source with nothing lost', async () => {
    const group = childGroup();
    onTestFinished(group.killAll);
    const { source, control, controlUrl, to } = await sourceAndDestination(group, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
    // 1 ms never fits a round of this guest's 4096 dirty pages (it takes ~300): precopy runs until cancelled.
    const migrate = new MigrateCommand(
      ['--source', controlUrl, '--to', to, '--mode', 'precopy', '--downtime-limit', '1', '--rounds', '10000', '--max-bandwidth', String(PACED_ROUNDS.maxBandwidth), '--after-instructions', '1000000'],
      group.token,
    );
    onTestFinished(() => void migrate.process.kill('SIGKILL'));
    await untilStatus(control, migrate, 'precopy-active', (rounds) => rounds > 0);

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
    const migrate = new MigrateCommand(['--source', controlUrl, '--to', to, '--mode', 'postcopy', '--after-instructions', '3000000', '--max-postcopy-bandwidth', '1M'], group.token);
    onTestFinished(() => void migrate.process.kill('SIGKILL'));
    await untilStatus(control, migrate, 'postcopy-active');

    migrate.process.kill('SIGINT');
    await expect.poll(() => migrate.stderr, { timeout: 30_000 }).toMatch(/postcopy migrate: not cancelled: cannot cancel while postcopy-active: the guest already runs on the destination.*\[MONITOR_ERR_COMMAND\]; following it to its end/);
    expect(migrate.process.exitCode).toBeNull();
    migrate.process.kill('SIGINT');
    expect(await migrate.exit()).toEqual({ code: null, signal: 'SIGINT' });

    expect((await control.migrationEnd()).status).toBe('completed');
    await expectArrivedIntact(source, destination, WRITTEN_8M_GUEST, end);
  });
});
