// `postcopy demo`: the whole story on one machine. A destination and a source
// run as two separate processes on loopback; the guest runs on the source,
// migrates after K instructions, runs on at the destination to N; then the
// same image runs to N without migrating, in a third process, and the two
// results (stateHash and console) must match for the run to be `verified`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { PostcopyError } from '../errors.ts';
import { checkProgramArgs } from '../guest/program-args.ts';
import { logger } from '../log.ts';
import { generateToken } from '../protocol/auth.ts';
import { MIGRATION_MODES, type MigrationInfo, type MigrationMode } from '../source/migration-info.ts';
import type { DestinationFigures } from '../destination/incoming-guest.ts';
import { ChildPostcopy } from './child-postcopy.ts';
import { ControlClient } from './control-client.ts';
import { followMigration } from './migration-progress.ts';
import { integer, reportErrors, withGuestOptions, withBandwidthOptions } from './options.ts';

interface DemoOptions {
  guest: string;
  ram: number;
  vcpus: number;
  guestArgs?: string;
  mode: MigrationMode;
  uffd: string;
  afterInstructions: number;
  instructions: number;
  downtimeLimit?: number;
  autoConverge?: boolean;
  maxBandwidth?: number;
  maxPostcopyBandwidth?: number;
  json?: boolean;
}

export interface DemoSummary {
  mode: MigrationMode;
  backend: string;
  ramBytes: number;
  vcpus: number;
  totalMs: number;
  setupMs: number;
  downtimeMs: number | null;
  transferredBytes: number;
  zeroPages: number;
  normalPages: number;
  mbps: number;
  postcopyRequests: number;
  blocktimeMs: number;
  faultLatencyUs: { p50: number; p90: number; p99: number; max: number };
  precopyRounds: number;
  verified: boolean;
  stateHash: string;
}

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

async function demo(options: DemoOptions): Promise<void> {
  if (options.afterInstructions >= options.instructions) {
    throw new PostcopyError('CLI_ERR_ARGS', `--after-instructions (${options.afterInstructions}) must be below --instructions (${options.instructions}): the guest must still run after migrating`);
  }
  // Here, not only in the children: a refused argument then reads as itself, not as a child that exited.
  checkProgramArgs(options.guest, options.guestArgs, options.ram, options.vcpus);
  const work = mkdtempSync(join(tmpdir(), 'postcopy-demo-'));
  const token = generateToken();
  const env = { POSTCOPY_TOKEN: token };
  const relay = !options.json;
  const guest = ['--guest', options.guest, '--ram', String(options.ram), '--vcpus', String(options.vcpus), ...(options.guestArgs ? ['--guest-args', options.guestArgs] : [])];
  const total = ['--instructions', String(options.instructions)];
  const children: ChildPostcopy[] = [];
  const cleanUp = (): void => {
    for (const c of children) c.kill();
    rmSync(work, { recursive: true, force: true });
  };
  // A signal or a crash (EPIPE on a closed stdout) ends the process without
  // reaching the finally below: the children were left to notice on their
  // own, and the work directory (the guest's disk image) stayed behind. A
  // signal is raised again once cleaned up, so that the exit status still
  // says which one ended the demo.
  const onSignal = (signal: NodeJS.Signals): void => {
    cleanUp();
    process.stderr.write(`\npostcopy demo: ${signal}: stopped the source and destination, removed ${work}\n`);
    process.kill(process.pid, signal);
  };
  for (const signal of STOP_SIGNALS) process.once(signal, onSignal);
  process.once('exit', cleanUp);
  try {
    const destination = new ChildPostcopy('destination', ['destination', '--listen', '127.0.0.1:0', '--uffd', options.uffd, ...total, '--report-fd', '3'], { relayConsole: relay, env });
    children.push(destination);
    const source = new ChildPostcopy('source', ['source', ...guest, ...total, '--disk', join(work, 'disk.img'), '--listen', '127.0.0.1:0', '--paused', '--report-fd', '3'], { relayConsole: relay, env });
    children.push(source);
    const to = (await destination.waitFor('listening')).url as string;
    const control = new ControlClient((await source.waitFor('listening')).control as string, token);
    // As a destination started ahead of time is (QEMU's -incoming): both sides' fault paths warm before the guest moves.
    await Promise.all([destination.waitFor('ready'), source.waitFor('ready')]);
    await control.migrate({
      to,
      mode: options.mode,
      afterInstructions: options.afterInstructions,
      downtimeLimitMs: options.downtimeLimit,
      autoConverge: options.autoConverge,
      maxBandwidth: options.maxBandwidth,
      maxPostcopyBandwidth: options.maxPostcopyBandwidth,
    });
    const info: MigrationInfo = await followMigration(control, relay && process.stderr.isTTY === true);
    if (info.status !== 'completed') {
      throw new PostcopyError('DEMO_ERR_MIGRATION', `the migration ended ${info.status}: ${info.error ?? 'see the log above'}`);
    }
    const finished = (await destination.waitFor('finished')) as unknown as DestinationFigures & { stateHash: string; console: string };
    await Promise.all([source.exit(), destination.exit()]);

    const reference = new ChildPostcopy('reference run', ['run', ...guest, ...total, '--disk', join(work, 'reference-disk.img'), '--json']);
    children.push(reference);
    await reference.exit();
    const refOut = reference.consoleText;
    const cut = refOut.lastIndexOf('\n', refOut.length - 2);
    const refResult = JSON.parse(refOut.slice(cut + 1)) as { stateHash: string; exitCode: number | null };
    const consoleMatches = source.consoleText + destination.consoleText === refOut.slice(0, cut + 1);
    const verified = refResult.stateHash === finished.stateHash && consoleMatches;

    const summary: DemoSummary = {
      mode: options.mode,
      backend: finished.backend,
      ramBytes: options.ram,
      vcpus: options.vcpus,
      totalMs: info.totalMs,
      setupMs: info.setupMs,
      downtimeMs: info.downtimeMs,
      transferredBytes: info.transferredBytes,
      zeroPages: info.zeroPages,
      normalPages: info.normalPages,
      mbps: info.mbps,
      postcopyRequests: finished.postcopyRequests,
      blocktimeMs: finished.blocktimeMs,
      faultLatencyUs: { p50: finished.faultLatencyUs.p50, p90: finished.faultLatencyUs.p90, p99: finished.faultLatencyUs.p99, max: finished.faultLatencyUs.max },
      precopyRounds: info.precopyRounds,
      verified,
      stateHash: finished.stateHash,
    };
    process.stdout.write(options.json ? `${JSON.stringify(summary)}\n` : formatSummary(summary, refResult.stateHash, consoleMatches));
    if (!verified && options.vcpus > 1 && refResult.exitCode !== null) {
      // Harts that wait for each other (memwork's end) spin for as long as thread timing makes them.
      logger().warn(
        { vcpus: options.vcpus },
        'the guest finished before --instructions on several vCPUs: if its harts wait for one another, its end state depends on thread timing, ' +
          'so two runs may differ without anything being lost; verify with one vCPU, or a guest that runs past N (memwork passes=0)',
      );
    }
    if (!verified) process.exitCode = 1;
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    process.off('exit', cleanUp);
    cleanUp();
  }
}

function formatSummary(s: DemoSummary, referenceHash: string, consoleMatches: boolean): string {
  const f = (n: number | null, d = 1): string => (n === null ? '-' : n.toFixed(d));
  return `
── postcopy demo: ${s.mode} migration, ${s.vcpus} vCPU(s), ${s.ramBytes / 1048576} MiB RAM, userfaultfd via ${s.backend}
   total ${f(s.totalMs)} ms, setup ${f(s.setupMs)} ms, downtime ${f(s.downtimeMs, 2)} ms
   moved ${(s.transferredBytes / 1048576).toFixed(1)} MiB at ${f(s.mbps, 0)} mbps: ${s.normalPages} pages, ${s.zeroPages} zero pages${s.precopyRounds ? `, ${s.precopyRounds} precopy rounds` : ''}
   ${s.postcopyRequests} postcopy requests; vCPUs blocked ${f(s.blocktimeMs, 2)} ms; fault latency p50 ${s.faultLatencyUs.p50} µs, p99 ${s.faultLatencyUs.p99} µs
   ${s.verified ? 'verified' : 'NOT VERIFIED'}: state ${s.stateHash.slice(0, 16)}… ${s.stateHash === referenceHash ? '=' : '≠'} run without migration ${referenceHash.slice(0, 16)}…, console ${consoleMatches ? 'identical' : 'differs'}
`;
}

export const demoCommand = withBandwidthOptions(withGuestOptions(new Command('demo').description('migrate a running guest between two processes on this machine, then verify it against a run without migration'), 'life'))
  .addOption(new Option('--mode <mode>', 'postcopy, precopy or hybrid').choices(MIGRATION_MODES).default('postcopy'))
  .addOption(new Option('--uffd <path>', "the destination's userfaultfd").choices(['auto', 'dev', 'syscall', 'syscall-user-mode-only', 'sim']).default('auto'))
  .option('--after-instructions <k>', 'migrate once every vCPU has run K instructions', integer(1, Number.MAX_SAFE_INTEGER), 10_000_000)
  .option('--instructions <n>', 'every vCPU stops at N, on the destination', integer(2, Number.MAX_SAFE_INTEGER), 40_000_000)
  .option('--downtime-limit <ms>', 'precopy switches over once the rest fits this downtime', integer(1, 3_600_000))
  .option('--auto-converge', "slow the guest's vCPUs (20%, then 10% more a round) while precopy does not converge")
  .option('--json', 'print the figures as one JSON object at the end (and no console)')
  .action(reportErrors('demo', demo));
