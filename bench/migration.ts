// The migration benchmark: postcopy migrations (3 by default) of a 1 GiB
// guest whose memwork working set (512 MiB, random writes) it keeps touching
// on the destination, read against floors measured in the same run on this
// machine, before the first migration and after each one. One migration's
// figures move by half from run to run on a shared 2-core machine, so the
// targets are read from the medians, with the range beside them:
//   - loopback TCP bandwidth (bench/tcp-bandwidth.c): RAM ÷ bandwidth is the
//     least time moving the RAM can take; target total ≤ 2× that;
//   - a remote page fault done minimally in C (bench/remote-fault.c): the same
//     userfaultfd → request → UFFDIO_COPY path with a background push running;
//     targets fault latency p50 ≤ 2× and p99 ≤ 3× of it;
//   - downtime under 10 ms.
// The C programs are built here into a temp dir, so the floors always come
// from this machine. Figures and ratios are printed, never judged: the exit
// code is non-zero only when something failed to run or the migrated guest
// did not verify.
//
// --max-postcopy-bandwidth caps postcopy's push (QEMU's parameter of that
// name) to show what a slower push buys the faults; the C floor's push stays
// uncapped, so the report then says the targets do not apply.
//
// RAM ÷ bandwidth leaves out what placing the RAM costs the destination. The
// C floor's own run with push is a whole minimal postcopy of the same RAM
// (push, faults, placement): its elapsed time is printed beside the total, so
// a machine where memory itself is slow (a virtual machine whose page faults
// and first touches trap to the host) shows it rather than hiding it.
//
// Each migration is followed by one whose guest stops after a thousand
// instructions on the destination, so it takes almost no fault: its total is
// what moving and placing the RAM costs when the guest's fault chain (vCPU,
// fault thread, the source's request thread: one core, all but busy) leaves
// the cores to the push and the placement. Printed beside the total, not
// judged: it shows how much of the total is the guest's faults competing for
// this machine's cores rather than the transfer itself.
//
// Fault latency is touch → resume for both, timed by the kernel's tracepoints
// (bench/fault-trace.ts, bpftrace, root): postcopy's own histogram starts when
// its fault thread reads the event, later than the touch the C floor times
// itself from, and ends before the vCPU runs again. Without bpftrace the
// targets fall back to those two self-timed figures, and say that this
// flatters postcopy.
//
//   npm run bench:migration -- [--json] [--runs N] [--ram 1G] [--wss 512M] [--after-instructions K]
//       [--instructions N] [--floor-rounds R] [--bin PATH] [--timeout S] [--no-trace] [--max-postcopy-bandwidth B/S]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import type { DemoSummary } from '../src/cli/demo.ts';
import { integer, size } from '../src/cli/options.ts';
import { compile, runJson, type Percentiles, type RemoteFault } from './c-programs.ts';
import { startFaultTrace, type FaultTrace, type TracedProcess } from './fault-trace.ts';

const DEFAULT_BIN = fileURLToPath(new URL('../bin/postcopy.js', import.meta.url));

const TOTAL_LIMIT = 2;
const P50_LIMIT = 2;
const P99_LIMIT = 3;
const DOWNTIME_LIMIT_MS = 10;

interface Options {
  json?: boolean;
  runs: number;
  ram: number;
  wss: number;
  afterInstructions: number;
  instructions: number;
  floorRounds: number;
  bin: string;
  timeout: number;
  trace: boolean;
  maxPostcopyBandwidth?: number;
}

interface Bandwidth {
  bytesPerRound: number;
  rounds: number;
  chunkBytes: number;
  gbPerSecond: number[];
  medianGBps: number;
  bestGBps: number;
}

interface Target {
  figure: string;
  /** The median over the runs that completed. */
  measured: number | null;
  /** Lowest and highest over those runs. */
  range: [number, number] | null;
  reference: number;
  basis: string;
  /** measured ÷ reference; for downtime the reference is the limit itself. */
  ratio: number | null;
  limit: string;
  met: boolean;
}

interface Result {
  loadavg: number[];
  /** Bytes per second postcopy's push was capped at; null: uncapped, like the C floor's. */
  maxPostcopyBandwidth: number | null;
  ramBytes: number;
  command: string;
  bandwidth: Bandwidth;
  floor: { rounds: RemoteFault[]; median: { latencyUs: Percentiles; serviceUs: Percentiles; elapsedMs: number }; quiet: RemoteFault };
  migrations: Migration[];
  /** Migrations whose guest stops a thousand instructions into the destination: the completed ones, and why the others failed. */
  idle: { runs: DemoSummary[]; errors: string[]; instructions: number };
  /** Touch → resume from the kernel's tracepoints, or why there is none. */
  traced: TracedFigures | { unavailable: string };
  targets: Target[];
}

interface TracedFigures {
  /** Per C floor round with push, in order. */
  floorRounds: TracedProcess[];
  quiet: TracedProcess;
  /** Median over floorRounds. */
  floorMedian: Percentiles;
  /** Processes with pc:vcpu threads that were none of the migrations' destinations: not counted. */
  unmatched: TracedProcess[];
}

interface Migration {
  summary: DemoSummary | null;
  /** Its destination process, from the demo's log: what its traced faults are found by. */
  destinationPid: number | null;
  error: string | null;
  postcopyPhaseMs: number | null;
  blockedFraction: number | null;
  /** Its destination's faults as the kernel saw them. */
  traced?: TracedProcess;
}

const note = (options: Options, line: string): void => {
  if (!options.json) process.stderr.write(`${line}\n`);
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function medianPercentiles(all: Percentiles[]): Percentiles {
  return { p50: median(all.map((p) => p.p50)), p90: median(all.map((p) => p.p90)), p99: median(all.map((p) => p.p99)), max: median(all.map((p) => p.max)) };
}

interface DemoRun {
  summary: DemoSummary;
  destinationPid: number | null;
}

/** The destination's pid, from its 'incoming migration' log line (JSON, as logs are off a TTY). */
function destinationPid(log: string[]): number | null {
  for (const line of log) {
    if (!line.includes('"incoming migration"')) continue;
    let entry: { pid?: number; side?: string; msg?: string };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue; // a line cut short: the pid is then not known, and the report says so
    }
    if (entry.side === 'destination' && entry.msg === 'incoming migration' && typeof entry.pid === 'number') return entry.pid;
  }
  return null;
}

/**
 * `postcopy demo --json`, the product's own end-to-end path, in a process
 * group of its own so a timeout also ends the source and destination it started.
 */
function demo(options: Options, instructions = options.instructions): { args: string[]; result: Promise<DemoRun> } {
  const args = [
    'demo', '--json', '--guest', 'memwork', '--ram', String(options.ram),
    '--guest-args', `wss=${options.wss} pattern=random write=100 passes=0`,
    '--mode', 'postcopy', '--after-instructions', String(options.afterInstructions), '--instructions', String(instructions),
    ...(options.maxPostcopyBandwidth === undefined ? [] : ['--max-postcopy-bandwidth', String(options.maxPostcopyBandwidth)]),
  ];
  const result = new Promise<DemoRun>((resolve, reject) => {
    const child = spawn(process.execPath, [options.bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      process.kill(-child.pid!, 'SIGKILL');
    }, options.timeout * 1000);
    child.stdout.on('data', (b: Buffer) => stdout.push(b));
    child.stderr.on('data', (b: Buffer) => stderr.push(b));
    child.once('error', reject);
    child.once('exit', () => {
      clearTimeout(timer);
      // The demo kills its children on the way out; a crash may not have. They hold its stderr: 'close' waits for them.
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // The group is already gone.
      }
    });
    // 'close', not 'exit': at 'exit' the figures may still be in the pipe.
    child.once('close', (code, signal) => {
      const out = Buffer.concat(stdout).toString().trim();
      const last = out.split('\n').at(-1) ?? '';
      const log = Buffer.concat(stderr).toString().trim().split('\n');
      if (!timedOut && last.startsWith('{')) {
        resolve({ summary: JSON.parse(last) as DemoSummary, destinationPid: destinationPid(log) });
        return;
      }
      const errors = log.filter((l) => /"level":(40|50|60)/.test(l) || !l.startsWith('{'));
      const how = timedOut ? `was still running after ${options.timeout} s (killed)` : `exited ${signal ?? code} without figures`;
      // A hang warns of nothing: then where the log stopped says where it hangs.
      const shown = errors.length > 0 ? ['its last warnings and errors:', ...errors.slice(-8)] : ['no warning or error; its log ended:', ...log.slice(-6)];
      reject(new Error(`postcopy demo ${how}; ${shown.join('\n  ')}`));
    });
  });
  return { args, result };
}

/** What the fault rows compare: both sides timed the same way. */
interface LatencyBasis {
  floor: Percentiles;
  of: (m: Migration) => Percentiles | undefined;
  basis: string;
}

function latencyBasis(traced: Result['traced'], floor: Percentiles): LatencyBasis {
  if ('unavailable' in traced) {
    return { floor, of: (m) => m.summary?.faultLatencyUs, basis: 'C with push, self-timed (postcopy times less of the fault: flatters it)' };
  }
  return { floor: traced.floorMedian, of: (m) => m.traced?.latencyUs, basis: 'C with push, traced touch → resume' };
}

/** RAM ÷ loopback TCP, in ms: the least time moving the RAM can take, what the totals are read against. */
function ramOverTcpMs(ram: number, bandwidth: Bandwidth): number {
  return (ram / (bandwidth.medianGBps * 1e9)) * 1000;
}

function targets(ram: number, bandwidth: Bandwidth, latency: LatencyBasis, migrations: Migration[]): Target[] {
  const floorMs = ramOverTcpMs(ram, bandwidth);
  const completed = migrations.filter((m) => m.summary !== null);
  const spread = (pick: (m: Migration) => number | null | undefined): { measured: number | null; range: [number, number] | null } => {
    const values = completed.map(pick).filter((v): v is number => v !== null && v !== undefined);
    return values.length === 0 ? { measured: null, range: null } : { measured: median(values), range: [Math.min(...values), Math.max(...values)] };
  };
  const row = (figure: string, pick: (m: Migration) => number | null | undefined, reference: number, basis: string, limit: number): Target => {
    const { measured, range } = spread(pick);
    const ratio = measured === null ? null : measured / reference;
    return { figure, measured, range, reference, basis, ratio, limit: `≤ ${limit}×`, met: ratio !== null && ratio <= limit };
  };
  const downtime = row('downtime ms', (m) => m.summary?.downtimeMs, DOWNTIME_LIMIT_MS, 'fixed limit', 1);
  return [
    row('total ms', (m) => m.summary?.totalMs, floorMs, `RAM ÷ loopback TCP ${bandwidth.medianGBps.toFixed(2)} GB/s`, TOTAL_LIMIT),
    row('fault p50 µs', (m) => latency.of(m)?.p50, latency.floor.p50, `${latency.basis}, p50`, P50_LIMIT),
    row('fault p99 µs', (m) => latency.of(m)?.p99, latency.floor.p99, `${latency.basis}, p99`, P99_LIMIT),
    // The reference is the limit itself, and it is a strict one.
    { ...downtime, limit: `< ${DOWNTIME_LIMIT_MS} ms`, met: downtime.measured !== null && downtime.measured < DOWNTIME_LIMIT_MS },
  ];
}

/**
 * Pairs the traced processes with the runs: the C floor runs one after
 * another, so its processes in the order they faulted are the floor rounds,
 * then the quiet round; each migration's destination is found by its pid.
 * The runs with the guest stopped are left out. Any other process whose
 * pc:vcpu threads the trace took for remote faults is left out, and counted.
 */
function matchTraced(processes: TracedProcess[], floorRounds: number, migrations: Migration[], idlePids: ReadonlySet<number>): Result['traced'] {
  const c = processes.filter((p) => p.kind === 'c');
  if (c.length !== floorRounds + 1) return { unavailable: `the trace saw ${c.length} C floor runs take faults, not ${floorRounds + 1}` };
  const byPid = new Map(processes.filter((p) => p.kind === 'postcopy').map((p) => [p.pid, p]));
  for (const m of migrations) {
    if ((m.summary?.postcopyRequests ?? 0) === 0) continue;
    const traced = m.destinationPid === null ? undefined : byPid.get(m.destinationPid);
    if (!traced) {
      const which = m.destinationPid === null ? 'a destination whose log named no pid' : `destination ${m.destinationPid}`;
      return { unavailable: `the trace saw no fault of ${which}, which took ${m.summary!.postcopyRequests} remote faults` };
    }
    m.traced = traced;
  }
  const matched = new Set(migrations.map((m) => m.destinationPid));
  const rounds = c.slice(0, -1);
  return {
    floorRounds: rounds,
    quiet: c.at(-1)!,
    floorMedian: medianPercentiles(rounds.map((r) => r.latencyUs)),
    unmatched: [...byPid.values()].filter((p) => !matched.has(p.pid) && !idlePids.has(p.pid)),
  };
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

type Format = (n: number | null | undefined, d?: number) => string;

function idleLines(r: Result, f: Format): string[] {
  const { runs, errors, instructions } = r.idle;
  const failed = errors.map((e) => `  with the guest stopped on the destination: a run FAILED: ${e}`);
  if (runs.length === 0) return failed;
  const totals = runs.map((m) => m.totalMs);
  return [
    `  postcopy with the guest stopped on the destination (--instructions ${instructions}; ${runs.map((m) => m.postcopyRequests).join(', ')} faults): ` +
      `total ${f(median(totals))} ms (median, ${f(Math.min(...totals))}–${f(Math.max(...totals))}), ${f(median(totals) / ramOverTcpMs(r.ramBytes, r.bandwidth), 2)}× RAM ÷ loopback TCP`,
    ...failed,
  ];
}

function tracedLine(t: TracedProcess, f: Format): string {
  return `traced touch → resume µs (${t.faults} faults): p50 ${f(t.latencyUs.p50)}  p90 ${f(t.latencyUs.p90)}  p99 ${f(t.latencyUs.p99)}  max ${f(t.latencyUs.max)}; ` +
    `of which woken → running p50 ${f(t.runUs.p50)}  p99 ${f(t.runUs.p99)}`;
}

function tracedFloorLines(traced: Result['traced'], f: Format): string[] {
  if ('unavailable' in traced) {
    return [`  not traced (${traced.unavailable}): the fault rows compare C's self-timed touch → resume with postcopy's event read → placed, which flatters postcopy`];
  }
  return [
    `  traced by the kernel (what the fault rows compare), median of the rounds: p50 ${f(traced.floorMedian.p50)}  p90 ${f(traced.floorMedian.p90)}  p99 ${f(traced.floorMedian.p99)}  max ${f(traced.floorMedian.max)}`,
    ...traced.floorRounds.map((t, i) => `    round ${i + 1}: ${tracedLine(t, f)}`),
    `    quiet: ${tracedLine(traced.quiet, f)}`,
    ...traced.unmatched.map((t) => `  not a destination here, left out: process ${t.pid}, ${tracedLine(t, f)}`),
  ];
}

function report(r: Result): string {
  const f = (n: number | null | undefined, d = 1): string => (n === null || n === undefined ? '-' : n.toFixed(d));
  const total = r.targets.find((t) => t.figure === 'total ms')?.measured ?? null;
  const lines = [
    '',
    `migration benchmark (load average at start ${r.loadavg.map((l) => l.toFixed(2)).join(' ')})`,
    `  $ ${r.command}`,
    '',
    `loopback TCP: ${r.bandwidth.gbPerSecond.map((g) => g.toFixed(2)).join(', ')} GB/s over ${r.bandwidth.rounds} × ${r.bandwidth.bytesPerRound / 2 ** 20} MiB; median ${r.bandwidth.medianGBps.toFixed(2)} GB/s`,
    `C remote fault (${r.floor.quiet.uffd}), touch → resume µs as it times itself, with the background push (${r.floor.rounds.length} rounds, median):`,
    `  p50 ${f(r.floor.median.latencyUs.p50)}  p90 ${f(r.floor.median.latencyUs.p90)}  p99 ${f(r.floor.median.latencyUs.p99)}  max ${f(r.floor.median.latencyUs.max)}` +
      `   (rounds: ${r.floor.rounds.map((x) => `${x.faults} faults, p50 ${f(x.latencyUs.p50)} p99 ${f(x.latencyUs.p99)}, push ${x.pushGBps.toFixed(2)} GB/s`).join('; ')})`,
    `  handler side (uffd_msg read → placed): p50 ${f(r.floor.median.serviceUs.p50)}  p99 ${f(r.floor.median.serviceUs.p99)}`,
    `  quiet (no push, ${r.floor.quiet.faults} faults): p50 ${f(r.floor.quiet.latencyUs.p50)}  p99 ${f(r.floor.quiet.latencyUs.p99)}`,
    ...tracedFloorLines(r.traced, f),
    `  a whole C postcopy of this RAM (push, faults, placement) took ${f(r.floor.median.elapsedMs)} ms (median), ` +
      `${f(r.floor.median.elapsedMs / ramOverTcpMs(r.ramBytes, r.bandwidth), 2)}× RAM ÷ loopback TCP` +
      (total === null ? '' : `; postcopy's median total is ${f(total / r.floor.median.elapsedMs, 2)}× it`),
    ...idleLines(r, f),
    '',
  ];
  r.migrations.forEach(({ summary: m, error, postcopyPhaseMs, blockedFraction, traced }, i) => {
    const run = `run ${i + 1}/${r.migrations.length}`;
    if (!m) {
      lines.push(`postcopy migration ${run} FAILED: ${error}`, '');
      return;
    }
    lines.push(
      `postcopy migration ${run}: ${m.ramBytes / 2 ** 20} MiB RAM, ${m.vcpus} vCPU, userfaultfd via ${m.backend}, ${m.verified ? 'verified' : 'NOT VERIFIED'}`,
      `  total ${f(m.totalMs)} ms, setup ${f(m.setupMs)} ms, downtime ${f(m.downtimeMs, 2)} ms, postcopy phase ${f(postcopyPhaseMs)} ms`,
      `  moved ${(m.transferredBytes / 2 ** 20).toFixed(1)} MiB at ${f(m.mbps, 0)} mbps (${f(m.mbps / 8000, 2)} GB/s): ${m.normalPages} pages, ${m.zeroPages} zero pages`,
      `  ${m.postcopyRequests} postcopy requests; vCPU blocked ${f(m.blocktimeMs)} ms (${f((blockedFraction ?? 0) * 100)}% of the postcopy phase)`,
      `  fault latency µs (fault event read → placed): p50 ${m.faultLatencyUs.p50}  p90 ${m.faultLatencyUs.p90}  p99 ${m.faultLatencyUs.p99}  max ${m.faultLatencyUs.max}`,
    );
    if (traced) lines.push(`  ${tracedLine(traced, f)}`);
    if (m.postcopyRequests === 0) lines.push('  the guest took no remote fault: every page arrived before it touched one, so the latency figures are empty');
    lines.push('');
  });
  const rows = [['figure', 'median', 'runs', 'reference', 'ratio', 'target', 'met', 'reference is']];
  for (const t of r.targets) {
    const range = t.range ? `${f(t.range[0])}–${f(t.range[1])}` : '-';
    // A capped push is not the targets' condition (the floor's push is not capped): nothing is judged but downtime.
    const met = r.maxPostcopyBandwidth !== null && t.figure !== 'downtime ms' ? 'n/a' : t.met ? 'yes' : 'no';
    rows.push([t.figure, f(t.measured), range, f(t.reference), t.ratio === null ? '-' : `${t.ratio.toFixed(2)}×`, t.limit, met, t.basis]);
  }
  lines.push(table(rows), '');
  if (r.maxPostcopyBandwidth !== null) {
    lines.push(
      `postcopy's push was capped at ${(r.maxPostcopyBandwidth / 2 ** 20).toFixed(0)} MiB/s and the C floor's was not: a trade-off shown, not the targets' conditions.`,
      '',
    );
  }
  return lines.join('\n');
}

async function main(options: Options): Promise<void> {
  if (options.afterInstructions >= options.instructions) throw new Error('--after-instructions must be below --instructions: the guest has to run on the destination');
  const startLoad = loadavg();
  const dir = mkdtempSync(join(tmpdir(), 'postcopy-bench-'));
  let tracing: FaultTrace | undefined;
  try {
    note(options, 'building the C floors…');
    const [bandwidthBin, faultBin] = await Promise.all([compile(dir, 'tcp-bandwidth'), compile(dir, 'remote-fault')]);
    const trace = options.trace ? await startFaultTrace() : { unavailable: 'turned off (--no-trace)' };
    if ('unavailable' in trace) note(options, `fault latency is not traced from the touch: ${trace.unavailable}`);
    tracing = 'unavailable' in trace ? undefined : trace;

    // Floors are measured between the migrations: the machine's load drifts
    // (other people's test runs), and it should weigh on both alike.
    const floorArgs = ['--region', String(options.ram), '--wss', String(options.wss)];
    const bandwidthRuns: Bandwidth[] = [];
    const rounds: RemoteFault[] = [];
    const measureFloors = async (when: string): Promise<void> => {
      note(options, `loopback TCP bandwidth (${when})…`);
      bandwidthRuns.push(await runJson<Bandwidth>(bandwidthBin, ['--bytes', String(Math.max(2 ** 30, options.ram)), '--rounds', '2']));
      note(options, `C remote-fault floor (${when})…`);
      for (let i = 0; i < options.floorRounds; i++) rounds.push(await runJson<RemoteFault>(faultBin, floorArgs));
    };
    await measureFloors('before');
    const migrations: Migration[] = [];
    const idleInstructions = options.afterInstructions + 1000;
    const idle: Result['idle'] = { runs: [], errors: [], instructions: idleInstructions };
    // Their few faults are traced too, and are none of the compared ones.
    const idlePids = new Set<number>();
    let command = '';
    for (let i = 0; i < options.runs; i++) {
      note(options, `postcopy migration ${i + 1}/${options.runs} (postcopy demo)…`);
      const d = demo(options);
      command = `node ${options.bin} ${d.args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`;
      try {
        const { summary: m, destinationPid } = await d.result;
        const postcopyPhaseMs = m.totalMs - m.setupMs - (m.downtimeMs ?? 0);
        migrations.push({ summary: m, destinationPid, error: null, postcopyPhaseMs, blockedFraction: postcopyPhaseMs > 0 ? m.blocktimeMs / postcopyPhaseMs : null });
      } catch (err) {
        migrations.push({ summary: null, destinationPid: null, error: (err as Error).message, postcopyPhaseMs: null, blockedFraction: null });
      }
      note(options, `postcopy migration ${i + 1}/${options.runs} with the guest stopped on the destination…`);
      try {
        const { summary, destinationPid: pid } = await demo(options, idleInstructions).result;
        if (pid !== null) idlePids.add(pid);
        if (!summary.verified) throw new Error('the migrated guest did not verify');
        idle.runs.push(summary);
      } catch (err) {
        idle.errors.push((err as Error).message);
      }
      await measureFloors(`after migration ${i + 1}`);
    }
    const quiet = await runJson<RemoteFault>(faultBin, [...floorArgs, '--push', '0']);
    if ([...rounds, quiet].some((x) => !x.verified)) throw new Error('the C floor placed wrong page contents: its figures cannot be trusted');
    const floor = {
      rounds,
      median: { latencyUs: medianPercentiles(rounds.map((x) => x.latencyUs)), serviceUs: medianPercentiles(rounds.map((x) => x.serviceUs)), elapsedMs: median(rounds.map((x) => x.elapsedMs)) },
      quiet,
    };
    const rates = bandwidthRuns.flatMap((b) => b.gbPerSecond);
    const bandwidth: Bandwidth = { ...bandwidthRuns[0], rounds: rates.length, gbPerSecond: rates, medianGBps: median(rates), bestGBps: Math.max(...rates) };
    const traced = 'unavailable' in trace ? trace : matchTraced(await trace.stop(), rounds.length, migrations, idlePids);
    const result: Result = {
      loadavg: startLoad,
      maxPostcopyBandwidth: options.maxPostcopyBandwidth ?? null,
      ramBytes: options.ram,
      command,
      bandwidth,
      floor,
      migrations,
      idle,
      traced,
      targets: targets(options.ram, bandwidth, latencyBasis(traced, floor.median.latencyUs), migrations),
    };
    process.stdout.write(options.json ? `${JSON.stringify(result)}\n` : report(result));
    if (migrations.some((m) => !m.summary?.verified) || idle.errors.length > 0) process.exitCode = 1;
  } finally {
    await tracing?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const program = new Command('bench:migration')
  .description('postcopy migration figures against loopback TCP and C remote-fault floors measured in the same run')
  .option('--json', 'print one JSON object instead of the table')
  .option('--runs <n>', 'postcopy migrations to measure; the targets read their medians', integer(1, 20), 3)
  .option('--ram <size>', 'guest RAM', size, 2 ** 30)
  .option('--wss <size>', "memwork's working set", size, 512 * 2 ** 20)
  .option('--after-instructions <k>', 'migrate after K guest instructions (enough to dirty the working set)', integer(1, Number.MAX_SAFE_INTEGER), 20_000_000)
  .option('--instructions <n>', 'the guest stops at N, on the destination', integer(2, Number.MAX_SAFE_INTEGER), 100_000_000)
  .option('--floor-rounds <r>', 'C remote-fault runs with push before the first migration and after each; their median is the floor', integer(1, 10), 2)
  .option('--bin <path>', 'the postcopy command to measure', DEFAULT_BIN)
  .option('--timeout <s>', 'give up on the migration after this many seconds', integer(10, 3600), 300)
  .option('--no-trace', 'do not time faults from the touch with bpftrace; compare the self-timed figures')
  .option('--max-postcopy-bandwidth <bytes/s>', "cap postcopy's background push (e.g. 300M); the targets then do not apply", size)
  .action(async (options: Options, command: Command) => {
    // memwork's working set lies in guest RAM, as the C floor's does in its region.
    if (options.wss > options.ram) command.error(`error: --wss ${options.wss} is larger than --ram ${options.ram}; the working set must fit in guest RAM`);
    try {
      await main(options);
    } catch (err) {
      process.stderr.write(`bench:migration: ${(err as Error).message}\n`);
      process.exitCode = 2;
    }
  });

await program.parseAsync(process.argv);
