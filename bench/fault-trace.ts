// Touch → resume for every remote page fault, timed by the kernel rather
// than by the program being measured: bpftrace on the page-fault and
// scheduler tracepoints. postcopy's own histogram starts when its fault
// thread reads the event and ends when the page is placed; it leaves out the
// wait for the fault thread to read and the vCPU's wait for a core after its
// page arrived, which on a busy host are most of a slow fault. The C floor
// times itself from the touch. Timing both with this one instrument makes
// the ratio honest.
//
// A traced fault: a user page fault of a touching thread (postcopy's vCPUs
// "pc:vcpu-N", the C floor's "rf:toucher") after which the thread sleeps, is
// woken by a thread that places pages (its waker is checked, so a later sleep
// on anything else is not taken for a fault), and runs again. Each fault
// gives touch → running and, within it, woken → running (the wait for a core).
//
// The spans are counted into histograms in the kernel and read once at the
// end: a line printed per fault would wake bpftrace for each one, and that
// wake-up alone doubled the quiet C floor's median on a 2-core machine.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Percentiles } from './c-programs.ts';

/**
 * Histogram buckets, in ticks of 100 ns: 0.1 µs wide below 100 µs, 1 µs to
 * 1 ms, 10 µs to 10 ms, 500 µs to 100 ms, then one open bucket for the rest.
 * `first` is a range's first index. Fine below 100 µs because on a fast host
 * the C floor's median is near 10 µs and postcopy's near 20: with 1 µs
 * buckets a run's p50 moved in steps of 5% of the 2× target, and changes of
 * 1 µs went unresolved.
 */
const TICK_NS = 100;
const TICKS_PER_US = 1000 / TICK_NS;
const BUCKETS = [
  { from: 0, width: 1 },
  { from: 1000, width: 10 },
  { from: 10_000, width: 100 },
  { from: 100_000, width: 5000 },
  { from: 1_000_000, width: Infinity },
].reduce<{ from: number; width: number; first: number }[]>((all, b, i) => {
  const prev = all[i - 1];
  return [...all, { ...b, first: prev ? prev.first + (b.from - prev.from) / prev.width : 0 }];
}, []);

/** Buckets in all: the open last one's index, plus one. */
const BUCKET_COUNT = BUCKETS.at(-1)!.first + 1;

/** The program's expression for the bucket index of `v`, from the same table. */
const bucketOf = (v: string): string =>
  BUCKETS.slice(0, -1).reduceRight(
    (rest, b, i) => `(${v} < ${BUCKETS[i + 1].from} ? ${b.first} + (${v} - ${b.from}) / ${b.width} : ${rest})`,
    String(BUCKETS.at(-1)!.first),
  );

const PROGRAM = `
tracepoint:exceptions:page_fault_user
/ strncmp(comm, "pc:vcpu-", 8) == 0 || comm == "rf:toucher" /
{ @fault[tid] = nsecs; @tgid[tid] = pid; @slept[tid] = 0; @woken[tid] = 0; }

tracepoint:sched:sched_switch
/ @fault[args->prev_pid] && (args->prev_state & 3) /
{ @slept[args->prev_pid] = 1; }

tracepoint:sched:sched_waking
/ @slept[args->pid] /
{
  if (comm == "pc:fault" || comm == "pc:bulk" || comm == "rf:handler" || comm == "rf:bulk") {
    @woken[args->pid] = nsecs; @slept[args->pid] = 0;
  } else {
    delete(@fault[args->pid]); delete(@slept[args->pid]); delete(@tgid[args->pid]);
  }
}

tracepoint:sched:sched_switch
/ @woken[args->next_pid] /
{
  $t = args->next_pid;
  $p = @tgid[$t];
  $now = nsecs;
  // A wake-up whose fault was forgotten meanwhile has nothing to be timed
  // from; timed from 0 it made a "process 0" with one fault of 13 hours.
  if ($p != 0 && @fault[$t] != 0) {
    $total = ($now - @fault[$t]) / ${TICK_NS};
    $run = ($now - @woken[$t]) / ${TICK_NS};
    if (@first[$p] == 0) {
      @first[$p] = @fault[$t];
      @postcopy[$p] = strncmp(args->next_comm, "pc:", 3) == 0 ? 1 : 0;
    }
    @total[$p, ${bucketOf('$total')}] = count();
    @run[$p, ${bucketOf('$run')}] = count();
    @max[$p] = max($total);
    @runmax[$p] = max($run);
  }
  delete(@fault[$t]); delete(@woken[$t]); delete(@tgid[$t]);
}

END {
  clear(@fault); clear(@slept); clear(@woken); clear(@tgid);
  print(@first); print(@postcopy); print(@max); print(@runmax); print(@total); print(@run);
  clear(@first); clear(@postcopy); clear(@max); clear(@runmax); clear(@total); clear(@run);
}
`;

const READY = 'fault-trace: attached';

/** One traced process's remote faults. */
export interface TracedProcess {
  pid: number;
  /** 'postcopy' (pc:vcpu-N threads) or 'c' (the C floor's toucher). */
  kind: 'postcopy' | 'c';
  faults: number;
  /** Touch → running again, µs (bucket midpoints; max to 0.1 µs). */
  latencyUs: Percentiles;
  /** Woken by the page's placement → running: the wait for a core. */
  runUs: Percentiles;
}

export interface FaultTrace {
  /** Ends the trace: every traced process, in the order its first fault was seen. */
  stop(): Promise<TracedProcess[]>;
}

/** Starts tracing, or says why it cannot (no bpftrace, no privilege, no tracepoints). */
export async function startFaultTrace(): Promise<FaultTrace | { unavailable: string }> {
  if (process.getuid?.() !== 0) return { unavailable: 'tracing faults from the touch needs root (bpftrace)' };
  const unmounted = mountTracefs();
  if (unmounted !== null) return { unavailable: unmounted };
  // bpftrace says "Attaching" before its probes are attached; the command it
  // runs (-c) starts only after. That cat echoes a line back: then it is tracing.
  // Closing its input ends cat, and with it the trace.
  const child = spawn('bpftrace', ['--no-warnings', '-e', PROGRAM, '-c', '/bin/cat'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    // A key per (process, bucket) in @total and @run, up to BUCKET_COUNT each:
    // room for every bucket of 40 processes (the default bench traces 12: 3
    // migrations, 8 floor rounds, the quiet floor). 65,536 keys, enough for
    // 1 µs buckets, would hold 11 such processes of 0.1 µs ones.
    env: { ...process.env, BPFTRACE_MAP_KEYS_MAX: String(40 * 2 * BUCKET_COUNT) },
  });
  child.stdin.on('error', () => undefined);
  child.stdin.write(`${READY}\n`);
  // 'close', not 'exit': the last lines may still be in the pipe at exit.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const lines: string[] = [];
  let pending = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const attached = new Promise<string | null>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'ENOENT' ? 'bpftrace is not installed (apt-get install bpftrace)' : `bpftrace: ${err.message}`),
    );
    child.once('exit', (code) => resolve(`bpftrace exited ${code} before attaching: ${stderr.trim().split('\n').at(-1) ?? ''}`));
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      pending += s;
      const complete = pending.split('\n');
      pending = complete.pop()!;
      for (const line of complete) {
        if (line === READY) resolve(null);
        else if (line.startsWith('@')) lines.push(line);
      }
    });
  });
  const failure = await attached;
  if (failure !== null) {
    child.kill('SIGKILL');
    return { unavailable: failure };
  }
  return {
    stop: async () => {
      child.stdin.end();
      await closed;
      return tracedProcesses(lines);
    },
  };
}

const TRACEFS = '/sys/kernel/tracing';

/**
 * bpftrace finds tracepoints through tracefs, which some hosts (Firecracker
 * guests among them) boot without; it then reports the tracepoint missing
 * rather than the file system. Mounts it, or says why it could not.
 */
function mountTracefs(): string | null {
  if (existsSync(`${TRACEFS}/available_events`)) return null;
  try {
    execFileSync('mount', ['-t', 'tracefs', 'tracefs', TRACEFS], { stdio: ['ignore', 'ignore', 'pipe'] });
    return null;
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return `tracefs is not mounted at ${TRACEFS} and mounting it failed (${stderr || (err as Error).message}); mount it with: mount -t tracefs tracefs ${TRACEFS}`;
  }
}

/** Reads the maps the program prints at its end. */
function tracedProcesses(lines: string[]): TracedProcess[] {
  const scalar = new Map<string, Map<number, number>>();
  const histogram = new Map<string, Map<number, Map<number, number>>>();
  for (const line of lines) {
    const m = /^@(\w+)\[(\d+)(?:, (\d+))?\]: (\d+)$/.exec(line);
    if (!m) continue;
    const [, map, pid, bucket, value] = m;
    if (bucket === undefined) {
      if (!scalar.has(map)) scalar.set(map, new Map());
      scalar.get(map)!.set(Number(pid), Number(value));
    } else {
      if (!histogram.has(map)) histogram.set(map, new Map());
      const perPid = histogram.get(map)!;
      if (!perPid.has(Number(pid))) perPid.set(Number(pid), new Map());
      perPid.get(Number(pid))!.set(Number(bucket), Number(value));
    }
  }
  const first = scalar.get('first') ?? new Map<number, number>();
  return [...first.entries()]
    .sort((a, b) => a[1] - b[1])
    .map(([pid]) => {
      const max = (name: string): number => (scalar.get(name)?.get(pid) ?? 0) / TICKS_PER_US;
      const total = histogram.get('total')?.get(pid) ?? new Map<number, number>();
      const run = histogram.get('run')?.get(pid) ?? new Map<number, number>();
      return {
        pid,
        kind: scalar.get('postcopy')?.get(pid) === 1 ? 'postcopy' : 'c',
        faults: [...total.values()].reduce((a, b) => a + b, 0),
        latencyUs: percentilesOfBuckets(total, max('max')),
        runUs: percentilesOfBuckets(run, max('runmax')),
      };
    });
}

/** The midpoint of a histogram bucket, in µs; the open last bucket reads as `max` (µs). */
export function bucketValue(index: number, max: number): number {
  const range = [...BUCKETS].reverse().find((b) => index >= b.first)!;
  if (range.width === Infinity) return max;
  return (range.from + (index - range.first) * range.width + range.width / 2) / TICKS_PER_US;
}

/**
 * Nearest-rank percentiles (as the C floors compute theirs) of a histogram
 * given as bucket index → count. `max` is the largest value seen, exact.
 */
export function percentilesOfBuckets(counts: Map<number, number>, max: number): Percentiles {
  const buckets = [...counts.entries()].sort((a, b) => a[0] - b[0]);
  const n = buckets.reduce((sum, [, c]) => sum + c, 0);
  const at = (q: number): number => {
    if (n === 0) return 0;
    const rank = Math.round(q * (n - 1));
    let seen = 0;
    for (const [index, count] of buckets) {
      seen += count;
      if (seen > rank) return Math.min(bucketValue(index, max), max);
    }
    return max;
  };
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: n === 0 ? 0 : max };
}
