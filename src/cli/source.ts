// `postcopy source`: runs a guest and offers a monitor: a prompt on a TTY and
// the JSON control endpoint that `postcopy migrate` and the demo drive.
import { Command, Option } from 'commander';
import { readGuestImage } from '../guest/guest-images.ts';
import { Machine } from '../guest/machine.ts';
import { checkProgramArgs } from '../guest/program-args.ts';
import { logger } from '../log.ts';
import { generateToken } from '../protocol/auth.ts';
import { ControlEndpoint } from '../source/control-endpoint.ts';
import { Monitor } from '../source/monitor.ts';
import { startMonitorPrompt } from '../source/monitor-prompt.ts';
import { hostPort, integer, reporter, reportErrors, withGuestOptions, type HostPort } from './options.ts';

interface SourceOptions {
  guest: string;
  ram: number;
  vcpus: number;
  guestArgs?: string;
  disk?: string;
  instructions?: number;
  listen: HostPort;
  token?: string;
  reportFd?: number;
  paused?: boolean;
}

async function source(options: SourceOptions): Promise<void> {
  const log = logger();
  const token = options.token ?? process.env.POSTCOPY_TOKEN ?? generateToken();
  const stopAt = options.instructions ?? Infinity;
  const report = reporter(options.reportFd);
  checkProgramArgs(options.guest, options.guestArgs, options.ram, options.vcpus);
  const machine = Machine.create({
    image: readGuestImage(options.guest),
    ramSize: options.ram,
    vcpus: options.vcpus,
    guestArgs: options.guestArgs,
    disk: options.disk,
    backend: 'kernel',
  });
  machine.on('console', (bytes) => process.stdout.write(bytes));
  const monitor = new Monitor({ machine, token, stopAt, disk: options.disk, log });
  const endpoint = await ControlEndpoint.listen(monitor, { ...options.listen, token, log }).catch(async (err: unknown) => {
    // The machine's threads would keep the process up behind the error.
    await machine.close();
    throw err;
  });
  machine.setStopAt(stopAt);
  await machine.start({ paused: options.paused === true });
  log.info({ control: endpoint.url, guest: options.guest, ramSize: options.ram, vcpus: options.vcpus }, 'guest running; control endpoint up');
  if (!options.token && !process.env.POSTCOPY_TOKEN) process.stderr.write(`postcopy source: migration token ${token}\n`);
  report({ event: 'listening', control: endpoint.url });
  void monitor.ready().then(() => report({ event: 'ready' }));
  const prompt = process.stdin.isTTY ? startMonitorPrompt(monitor, process.stdin, process.stderr) : undefined;

  await new Promise<void>((resolve) => {
    monitor.once('quit', resolve);
    monitor.once('completed', (info) => {
      report({ event: 'completed', info, console: machine.consoleText() });
      resolve();
    });
    // A guest that powers off mid-migration is still migrated (its state says it is off).
    machine.once('finished', (f) => {
      if (monitor.migrating) return;
      log.info({ exitCode: f.code }, 'the guest powered off');
      report({ event: 'finished', exitCode: f.code, console: machine.consoleText() });
      process.exitCode = f.code;
      resolve();
    });
  });
  prompt?.close();
  await endpoint.close();
  await machine.close();
}

export const sourceCommand = withGuestOptions(new Command('source').description('run a guest as a migration source, with a monitor prompt (on a TTY) and a JSON control endpoint'))
  .option('--disk <path>', 'block device image on storage both sides share')
  .option('--instructions <n>', 'stop every hart at exactly this time, here or after migrating', integer(1, Number.MAX_SAFE_INTEGER))
  .addOption(new Option('--listen <host:port>', 'control endpoint address').argParser(hostPort).default({ host: '127.0.0.1', port: 4444 }, '127.0.0.1:4444'))
  .option('--token <token>', 'migration token shared with the destination (default $POSTCOPY_TOKEN, else generated and printed)')
  .option('-S, --paused', 'start with the vCPUs stopped (QEMU -S): a later `migrate` with afterInstructions runs them to that point')
  .option('--report-fd <fd>', 'write JSON events (listening, ready, completed) to this file descriptor', integer(3, 1024))
  .action(reportErrors('source', source));
