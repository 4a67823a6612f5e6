// `postcopy destination`: waits for one incoming guest, runs it as soon as its
// state arrives, fetches its pages on demand, and keeps it running after the
// source let go (console on stdout).
import { Command, Option } from 'commander';
import { IncomingGuest, type DestinationFigures } from '../destination/incoming-guest.ts';
import { logger } from '../log.ts';
import { PostcopyError } from '../errors.ts';
import type { AccessPath } from '../uffd/index.ts';
import { hostPort, integer, reporter, reportErrors, tokenFrom, type HostPort } from './options.ts';

interface DestinationOptions {
  listen: HostPort;
  uffd: AccessPath | 'auto';
  token?: string;
  instructions?: number;
  disk?: string;
  json?: boolean;
  reportFd?: number;
}

async function destination(options: DestinationOptions): Promise<void> {
  const log = logger();
  const token = tokenFrom(options.token, 'destination');
  const report = reporter(options.reportFd);
  const stopAt = options.instructions ?? Infinity;
  const incoming = await IncomingGuest.listen({ ...options.listen, token, uffdPath: options.uffd, disk: options.disk, stopAt, log });
  log.info({ url: incoming.url, uffd: options.uffd }, 'waiting for an incoming guest');
  report({ event: 'listening', url: incoming.url });
  void incoming.ready().then(() => report({ event: 'ready' }));

  // Parents (the demo, tests) learn why, not only that it exited.
  incoming.once('failed', (err) => report({ event: 'failed', message: err.message, code: err instanceof PostcopyError ? err.code : undefined }));
  try {
    const failed = new Promise<never>((_resolve, reject) => incoming.once('failed', reject));
    const completed = new Promise<DestinationFigures>((resolve) => incoming.once('completed', resolve));
    const machine = await Promise.race([new Promise<NonNullable<IncomingGuest['machine']>>((resolve) => incoming.once('started', resolve)), failed]);
    machine.on('console', (bytes) => process.stdout.write(bytes));
    const figures = await Promise.race([completed, failed]);
    // Until now a source whose connection broke may come back to resume.
    incoming.stopListening();
    log.info(figures, 'every page is here; the source released the guest');
    const reports = await Promise.race([machine.runUntil(stopAt), failed]);
    const stateHash = machine.stateHash();
    const exitCode = machine.exit?.code ?? null;
    const result = { ...incoming.figures(), stateHash, exitCode, times: reports.map((r) => r.time) };
    report({ event: 'finished', ...result, console: machine.consoleText() });
    if (options.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    if (exitCode !== null) process.exitCode = exitCode;
  } finally {
    // Also on failure: the listener, the userfaultfd and guest RAM would keep the process alive.
    await incoming.close();
  }
}

export const destinationCommand = new Command('destination')
  .description('wait for one incoming guest and run it, fetching its pages on demand through a userfaultfd')
  .addOption(new Option('--listen <host:port>', 'address the source connects to').argParser(hostPort).default({ host: '127.0.0.1', port: 4445 }, '127.0.0.1:4445'))
  .addOption(
    new Option('--uffd <path>', 'how to obtain the userfaultfd').choices(['auto', 'dev', 'syscall', 'syscall-user-mode-only', 'sim']).default('auto'),
  )
  .option('--token <token>', 'migration token shared with the source (default $POSTCOPY_TOKEN)')
  .option('--instructions <n>', 'stop every hart at exactly this time, then report and exit', integer(1, Number.MAX_SAFE_INTEGER))
  .option('--disk <path>', 'the shared block device image, if mounted at another path than on the source')
  .option('--json', 'print figures and the stateHash at the end')
  .option('--report-fd <fd>', 'write JSON events (listening, ready, finished, failed) to this file descriptor', integer(3, 1024))
  .action(reportErrors('destination', destination));
