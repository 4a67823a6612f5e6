// The fault path alone, without a migration around it: a worker standing in
// for a vCPU touches distinct random pages of a kernel region; the
// destination's fault thread asks for each over a real loopback WebSocket,
// the source's request thread answers, and the fault thread places it. No
// background push, both main threads idle. Next to the same loop in C
// (bench/remote-fault.c --push 0, built and run here), it prints touch →
// resume and read → placed percentiles and, the figure to cut, the CPU each
// fault-path thread spends per fault (from /proc/self/task/*/schedstat): in a
// migration that CPU is taken from the bulk push on a small host.
// Figures and ratios are printed, never judged; the exit code is non-zero
// only when something failed to run or a page arrived wrong.
//
//   npm run bench:fault-path -- [--faults N] [--region BYTES] [--json]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { integer, size } from '../src/cli/options.ts';
import { FaultThread } from '../src/destination/fault-thread.ts';
import { createLogger } from '../src/log.ts';
import { generateSessionId, generateToken } from '../src/protocol/auth.ts';
import { connectMigration } from '../src/protocol/connect.ts';
import { MigrationListener, type IncomingMigration } from '../src/protocol/listener.ts';
import { PageBitmap } from '../src/protocol/page-bitmap.ts';
import { SharedMigrationState } from '../src/protocol/shared-state.ts';
import { MigrationStateMachine } from '../src/protocol/state.ts';
import { PageServer } from '../src/source/page-server.ts';
import { RequestThread } from '../src/source/page-thread.ts';
import { KernelUserfaultfd } from '../src/uffd/kernel.ts';
import { openUserfaultfd } from '../src/uffd/open.ts';
import { allocateRegion } from '../src/uffd/region.ts';
import { startWorker } from '../src/worker.ts';
import { compile, runJson, type Percentiles, type RemoteFault } from './c-programs.ts';
import type { ToucherData } from './fault-roundtrip.toucher.ts';

const PAGE = 4096;

interface Options {
  faults: number;
  region: number;
  json?: boolean;
}

/** CPU milliseconds so far of each of this process's threads, by thread id. */
function threadCpu(): Map<string, number> {
  const cpu = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      cpu.set(tid, Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return cpu;
}

function percentiles(valuesUs: Float64Array): Percentiles {
  const sorted = Float64Array.from(valuesUs).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] };
}

/** Distinct random pages, every one touched once (Fisher-Yates over the first `count`). */
function randomPages(count: number, pages: number): number[] {
  const order = Array.from({ length: pages }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(Math.random() * (pages - i));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order.slice(0, count);
}

async function nodeFaultPath(options: Options): Promise<{ touchUs: Percentiles; serviceUs: Percentiles; cpuUsPerFault: { faultThread: number; requestThread: number }; verified: boolean }> {
  // Quiet: closing the region with untouched pages missing is expected here.
  const log = createLogger({ level: 'error' });
  const pageCount = options.region / PAGE;
  const token = generateToken();
  const destState = new MigrationStateMachine();
  const sourceState = new MigrationStateMachine();
  const listener = await MigrationListener.listen({ token, pageSize: PAGE, state: destState, log });
  const incoming = new Promise<IncomingMigration>((resolve) => listener.onMigration(resolve));

  // Every page of source RAM distinct, so a page placed at the wrong address shows.
  const ram = new SharedArrayBuffer(options.region);
  const words = new Uint32Array(ram);
  for (let p = 0; p < pageCount; p++) words.fill(p * 2654435761, (p * PAGE) / 4, ((p + 1) * PAGE) / 4);
  const server = new PageServer({ ram: new Uint8Array(ram), pageSize: PAGE, log });
  const requests = new RequestThread(log);
  const faults = new FaultThread(log);
  // As a source and a destination do while they wait for a migration: the page threads rehearse first.
  await Promise.all([requests.rehearsed(), faults.rehearsed()]);
  const region = allocateRegion(options.region, 'kernel');
  const uffd = openUserfaultfd({ path: 'dev', logger: log }) as KernelUserfaultfd;
  try {
    requests.serve({ ram: { kind: 'shared', buffer: ram }, share: server.share, state: sourceState });
    uffd.register(region.address, region.length);
    const received = new PageBitmap(pageCount);
    destState.onChange((_from, to) => faults.setState(to));
    faults.serve({ uffd, regionAddress: region.address, regionLength: region.length, pageSize: PAGE, received, state: destState.state, sharedState: SharedMigrationState.mirror(destState).buffer });
    const source = await connectMigration({
      url: `ws://127.0.0.1:${listener.port}`,
      token,
      session: generateSessionId(),
      identity: { pageSize: PAGE, ramBase: 0x8000_0000, ramSize: options.region, vcpus: 1, imageSha256: '0'.repeat(64) },
      state: sourceState,
      log,
    });
    requests.adopt(source.urgent);
    await faults.adopt((await incoming).channels.urgent);
    for (const state of [sourceState, destState]) {
      state.moveTo('device');
      state.moveTo('postcopy-active');
    }

    const pages = randomPages(options.faults, pageCount);
    const latencies = new SharedArrayBuffer(options.faults * 8);
    const before = threadCpu();
    const toucher = startWorker(new URL('./fault-roundtrip.toucher.ts', import.meta.url), {
      handle: region.handle,
      offsets: Float64Array.from(pages, (p) => p * PAGE),
      warmup: 0,
      latencies,
    } satisfies ToucherData);
    const [{ aborted }] = (await once(toucher, 'message')) as [{ aborted: boolean }];
    const after = threadCpu();
    await toucher.terminate();
    const spent = (tid: number | undefined): number => {
      if (tid === undefined) throw new Error('a fault-path thread never said it was loaded');
      return (((after.get(String(tid)) ?? 0) - (before.get(String(tid)) ?? 0)) * 1000) / options.faults;
    };
    const figures = await faults.figures();
    const placed = region.bytes();
    const verified = !aborted && pages.every((p) => Buffer.compare(placed.subarray(p * PAGE, (p + 1) * PAGE), new Uint8Array(ram, p * PAGE, PAGE)) === 0);
    await requests.stop(1000, 'benchmark over');
    for (const c of [source.control, source.bulk]) c.close();
    return {
      touchUs: percentiles(new Float64Array(latencies).map((ns) => ns / 1000)),
      serviceUs: figures.latencyUs,
      cpuUsPerFault: { faultThread: spent(faults.tid), requestThread: spent(requests.tid) },
      verified,
    };
  } finally {
    await faults.close();
    await listener.close();
    uffd.close();
    region.release();
  }
}

async function main(options: Options): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'postcopy-bench-'));
  try {
    const floorBin = await compile(dir, 'remote-fault');
    const floor = await runJson<RemoteFault>(floorBin, ['--region', String(options.region), '--wss', String(options.region), '--push', '0', '--max-faults', String(options.faults)]);
    const ours = await nodeFaultPath(options);
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ faults: options.faults, regionBytes: options.region, floor, ours })}\n`);
    } else {
      const f = (v: number): string => v.toFixed(1);
      const row = (name: string, measured: number, reference: number): string =>
        `${name.padEnd(24)}${f(measured).padStart(9)}${f(reference).padStart(11)}${`${(measured / reference).toFixed(2)}×`.padStart(8)}`;
      process.stdout.write(
        [
          `fault path alone: ${options.faults} distinct random pages of a ${options.region / 2 ** 20} MiB region, no background push`,
          `figure                  measured  C (--push 0)  ratio`,
          row('touch → resume p50 µs', ours.touchUs.p50, floor.latencyUs.p50),
          row('touch → resume p99 µs', ours.touchUs.p99, floor.latencyUs.p99),
          row('read → placed p50 µs', ours.serviceUs.p50, floor.serviceUs.p50),
          row('read → placed p99 µs', ours.serviceUs.p99, floor.serviceUs.p99),
          `CPU per fault: destination fault thread ${f(ours.cpuUsPerFault.faultThread)} µs, source request thread ${f(ours.cpuUsPerFault.requestThread)} µs`,
          `pages verified: ${ours.verified && floor.verified}`,
          '',
        ].join('\n'),
      );
    }
    if (!ours.verified || !floor.verified) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await new Command('bench:fault-path')
  .description('the fault path alone (fault thread → request thread → UFFDIO_COPY) against the same loop in C')
  .option('--faults <n>', 'distinct pages touched', integer(1, 10_000_000), 20_000)
  .option('--region <bytes>', 'region size', size, 256 * 2 ** 20)
  .option('--json', 'one JSON object instead of the table')
  .action((options: Options, command: Command) => {
    // Every touch is of a page of its own, so the region must hold them all.
    if (options.region % PAGE !== 0) command.error(`error: --region ${options.region} is not a whole number of ${PAGE}-byte pages`);
    if (options.faults > options.region / PAGE) {
      command.error(`error: --faults ${options.faults} is more than the ${options.region / PAGE} pages of the --region; raise --region or lower --faults`);
    }
    return main(options);
  })
  .parseAsync();
