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
// gives three spans: touch → resume, touch → woken, woken → running.
import { spawn } from 'node:child_process';
import type { Percentiles } from './c-programs.ts';

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
  $now = nsecs;
  printf("F %d %s %llu %llu %llu\\n", @tgid[$t], args->next_comm, $now - @fault[$t], @woken[$t] - @fault[$t], $now - @woken[$t]);
  delete(@fault[$t]); delete(@woken[$t]); delete(@tgid[$t]);
}

END { clear(@fault); clear(@slept); clear(@woken); clear(@tgid); }
`;

const READY = 'fault-trace: attached';

/** One remote fault, in microseconds. */
export interface TracedFault {
  /** Touch → running again. */
  totalUs: number;
  /** Touch → woken by the thread that placed the page. */
  wokenUs: number;
  /** Woken → running: the wait for a core. */
  runUs: number;
}

/** A traced process's faults, in the order they happened. */
export interface TracedProcess {
  pid: number;
  /** 'postcopy' (pc:vcpu-N threads) or 'c' (the C floor's toucher). */
  kind: 'postcopy' | 'c';
  faults: TracedFault[];
}

export interface FaultTrace {
  /** Ends the trace: every traced process, in the order its first fault was seen. */
  stop(): Promise<TracedProcess[]>;
}

/** Starts tracing, or says why it cannot (no bpftrace, no privilege, no tracepoints). */
export async function startFaultTrace(): Promise<FaultTrace | { unavailable: string }> {
  if (process.getuid?.() !== 0) return { unavailable: 'tracing faults from the touch needs root (bpftrace)' };
  // bpftrace says "Attaching" before its probes are attached; the command it
  // runs (-c) starts only after. That cat echoes a line back: then it is tracing.
  // Closing its input ends cat, and with it the trace.
  const child = spawn('bpftrace', ['--no-warnings', '-e', PROGRAM, '-c', '/bin/cat'], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => undefined);
  child.stdin.write(`${READY}\n`);
  // 'close', not 'exit': the last lines may still be in the pipe at exit.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const processes = new Map<number, TracedProcess>();
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
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (line === READY) resolve(null);
        else if (line.startsWith('F ')) record(processes, line);
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
      return [...processes.values()];
    },
  };
}

function record(processes: Map<number, TracedProcess>, line: string): void {
  const [, pid, comm, total, woken, run] = line.split(' ');
  const key = Number(pid);
  let traced = processes.get(key);
  if (!traced) {
    traced = { pid: key, kind: comm.startsWith('pc:') ? 'postcopy' : 'c', faults: [] };
    processes.set(key, traced);
  }
  traced.faults.push({ totalUs: Number(total) / 1000, wokenUs: Number(woken) / 1000, runUs: Number(run) / 1000 });
}

/** Percentiles of `values` (µs), nearest rank, as the C floors compute theirs. */
export function percentilesOf(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => (sorted.length === 0 ? 0 : sorted[Math.round(q * (sorted.length - 1))]);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
}
