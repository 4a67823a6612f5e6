// The `postcopy` command line: one subcommand per module in this folder.
import { Command } from 'commander';
import { createRequire } from 'node:module';
import { runCommand } from './run.ts';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

const program = new Command('postcopy')
  .description('Live migration of a RISC-V guest between processes, postcopy over a real userfaultfd')
  .version(pkg.version)
  .showHelpAfterError();

program.addCommand(runCommand);

await program.parseAsync(process.argv);
