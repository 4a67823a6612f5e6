// `postcopy migrate`: tells a running source to migrate, follows it with a
// progress bar, and prints the final figures.
import { Command, Option } from 'commander';
import { PostcopyError } from '../errors.ts';
import { formatMigrationInfo } from '../source/format-info.ts';
import { MIGRATION_MODES, type MigrationMode } from '../source/migration-info.ts';
import { MIGRATE_DEFAULTS } from '../source/monitor.ts';
import { ControlClient } from './control-client.ts';
import { followMigration } from './migration-progress.ts';
import { integer, reportErrors, tokenFrom, withBandwidthOptions } from './options.ts';

interface MigrateOptions {
  source: string;
  to: string;
  mode: MigrationMode;
  token?: string;
  downtimeLimit: number;
  rounds: number;
  hybridRounds: number;
  autoConverge?: boolean;
  afterInstructions?: number;
  maxBandwidth?: number;
  maxPostcopyBandwidth?: number;
  json?: boolean;
}

async function migrate(options: MigrateOptions): Promise<void> {
  const client = new ControlClient(options.source, tokenFrom(options.token, 'migrate'));
  await client.migrate({
    to: options.to,
    mode: options.mode,
    downtimeLimitMs: options.downtimeLimit,
    maxRounds: options.rounds,
    hybridRounds: options.hybridRounds,
    autoConverge: options.autoConverge,
    afterInstructions: options.afterInstructions,
    maxBandwidth: options.maxBandwidth,
    maxPostcopyBandwidth: options.maxPostcopyBandwidth,
  });
  // Ctrl-C cancels the migration, as it does virsh migrate's. The source
  // refuses once the guest runs on the destination; a second Ctrl-C then
  // meets no handler and ends this process, leaving the migration to finish.
  const onInterrupt = (): void => {
    process.stderr.write('\npostcopy migrate: interrupted: cancelling the migration (interrupt again to stop following it; it goes on without this command)\n');
    client.cancel().catch((err: unknown) => {
      const reason = err instanceof PostcopyError ? `${err.message} [${err.code}]` : String(err);
      process.stderr.write(`postcopy migrate: not cancelled: ${reason}; following it to its end\n`);
    });
  };
  process.once('SIGINT', onInterrupt);
  const info = await followMigration(client, process.stderr.isTTY === true && !options.json).finally(() => process.off('SIGINT', onInterrupt));
  process.stdout.write(options.json ? `${JSON.stringify(info)}\n` : `${formatMigrationInfo(info)}\n`);
  if (info.status !== 'completed') {
    throw new PostcopyError('MIGRATE_ERR_' + info.status.toUpperCase().replace('-', '_'), `migration ${info.status}: ${info.error ?? 'see the source log'}`);
  }
}

export const migrateCommand = withBandwidthOptions(new Command('migrate'))
  .description('migrate the guest of a running `postcopy source` to a `postcopy destination`')
  .requiredOption('--source <url>', "the source's control endpoint, e.g. http://127.0.0.1:4444")
  .requiredOption('--to <url>', 'the destination, e.g. ws://127.0.0.1:4445')
  .addOption(new Option('--mode <mode>', 'postcopy: switch over at once; precopy: copy while running; hybrid: precopy rounds, then postcopy').choices(MIGRATION_MODES).default(MIGRATE_DEFAULTS.mode))
  .option('--token <token>', 'migration token (default $POSTCOPY_TOKEN)')
  .option('--downtime-limit <ms>', 'precopy switches over once the rest fits this downtime', integer(1, 3_600_000), MIGRATE_DEFAULTS.downtimeLimitMs)
  .option('--rounds <n>', 'precopy gives up after this many rounds', integer(1, 10_000), MIGRATE_DEFAULTS.maxRounds)
  .option('--hybrid-rounds <n>', 'hybrid switches to postcopy after this many rounds', integer(1, 10_000), MIGRATE_DEFAULTS.hybridRounds)
  .option('--auto-converge', "slow the guest's vCPUs (20%, then 10% more a round) while precopy does not converge")
  .option('--after-instructions <n>', 'start once every vCPU has run this many instructions', integer(1, Number.MAX_SAFE_INTEGER))
  .option('--json', 'print the final figures as JSON')
  .action(reportErrors('migrate', migrate));
