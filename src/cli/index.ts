// The `postcopy` command line: one subcommand per module in this folder.
import { Command } from 'commander';
import { createRequire } from 'node:module';
import { demoCommand } from './demo.ts';
import { destinationCommand } from './destination.ts';
import { doctorCommand } from './doctor.ts';
import { migrateCommand } from './migrate.ts';
import { runCommand } from './run.ts';
import { sourceCommand } from './source.ts';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

const program = new Command('postcopy')
  .description('Live migration of a RISC-V guest between processes, postcopy over a real userfaultfd')
  .version(pkg.version)
  .showHelpAfterError();

program.addCommand(runCommand);
program.addCommand(sourceCommand);
program.addCommand(destinationCommand);
program.addCommand(migrateCommand);
program.addCommand(demoCommand);
program.addCommand(doctorCommand);

await program.parseAsync(process.argv);
