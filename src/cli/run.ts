// `postcopy run`: runs a guest locally, console on stdout. Optionally stops at
// an exact per-hart instruction count, saves a snapshot there, or continues
// from one (how tests prove a restored machine continues exactly).
import { Command, Option } from 'commander';
import { readGuestImage } from '../guest/guest-images.ts';
import { Machine } from '../guest/machine.ts';
import { checkProgramArgs } from '../guest/program-args.ts';
import type { RamBackend } from '../guest/ram.ts';
import { readSnapshot, writeSnapshot } from '../guest/snapshot.ts';
import { PostcopyError } from '../errors.ts';
import { integer, withGuestOptions } from './options.ts';

interface RunOptions {
  guest: string;
  ram: number;
  vcpus: number;
  guestArgs?: string;
  instructions?: number;
  disk?: string;
  uffd: RamBackend | 'none';
  json?: boolean;
  save?: string;
  restore?: string;
}

async function run(options: RunOptions): Promise<void> {
  const image = readGuestImage(options.guest);
  const common = {
    image,
    guestArgs: options.guestArgs,
    disk: options.disk,
    backend: options.uffd === 'none' ? ('shared' as const) : options.uffd,
  };
  let machine: Machine;
  if (options.restore) {
    let created: Machine | undefined;
    const { imageHash, state } = readSnapshot(options.restore, (s) => {
      created = Machine.create({ ...common, ramSize: s.ramSize, vcpus: s.vcpus });
      return created.ram.bytes();
    });
    machine = created!;
    if (imageHash !== machine.imageHash) {
      await machine.close();
      throw new PostcopyError('GUEST_ERR_IMAGE', `snapshot ${options.restore} was taken running another guest image (sha256 ${imageHash.slice(0, 12)}…, --guest is ${machine.imageHash.slice(0, 12)}…)`);
    }
    machine.restore(state);
  } else {
    checkProgramArgs(options.guest, options.guestArgs, options.ram, options.vcpus);
    machine = Machine.create({ ...common, ramSize: options.ram, vcpus: options.vcpus });
  }
  machine.on('console', (bytes) => process.stdout.write(bytes));

  let interrupted = false;
  const onSigint = (): void => {
    interrupted = true;
    void machine.pause().catch(() => undefined);
  };
  process.once('SIGINT', onSigint);
  const started = performance.now();
  let initial: number[] = [];
  try {
    await machine.start({ paused: true });
    initial = (await machine.pause()).slice();
    const target = options.instructions ?? Infinity;
    await machine.runUntil(target);
    if (interrupted) process.stderr.write('\npostcopy run: interrupted, paused the guest\n');
    const seconds = (performance.now() - started) / 1000;
    const times = (await machine.pause()).slice();
    const instructions = times.reduce((sum, t, h) => sum + t - initial[h]!, 0);
    if (options.save) writeSnapshot(options.save, machine.imageHash, machine.save(), machine.ram.bytes());
    const exitCode = machine.exit?.code ?? 0;
    if (options.json) {
      const stateHash = machine.stateHash();
      process.stdout.write(`${JSON.stringify({ instructions, stateHash, exitCode, mips: Number((instructions / seconds / 1e6).toFixed(2)) })}\n`);
    }
    process.exitCode = exitCode;
  } finally {
    process.off('SIGINT', onSigint);
    await machine.close();
  }
}

export const runCommand = withGuestOptions(new Command('run').description('run a guest locally, console on stdout'))
  .option('--instructions <n>', 'stop every hart at exactly this time (retired instructions)', integer(0, Number.MAX_SAFE_INTEGER))
  .option('--disk <path>', 'block device image (created sparse, 64 MiB, when absent)')
  .addOption(new Option('--uffd <backend>', 'guest RAM: kernel (mmap) or sim (software userfaultfd memory), or none (plain shared memory)').choices(['kernel', 'sim', 'none']).default('kernel'))
  .option('--json', 'print { instructions, stateHash, exitCode, mips } at the end')
  .option('--save <file>', 'when stopped, write a snapshot (state + RAM) to <file>')
  .option('--restore <file>', 'continue from a snapshot instead of booting (same --guest; --ram/--vcpus come from the snapshot)')
  .action(async (options: RunOptions) => {
    try {
      await run(options);
    } catch (err) {
      if (!(err instanceof PostcopyError)) throw err;
      process.stderr.write(`postcopy run: ${err.message} [${err.code}]${err.advice ? `\n  ${err.advice}` : ''}\n`);
      process.exitCode = 2;
    }
  });
