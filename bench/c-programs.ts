// The benchmarks' C floors (bench/*.c): built with the machine's cc into a
// temp dir, so a floor always comes from the machine it is compared on, and
// run for the one line of JSON each prints last.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const run = promisify(execFile);
const BENCH = fileURLToPath(new URL('.', import.meta.url));

/** Percentiles in microseconds, as the C programs print them. */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** What bench/remote-fault.c prints. */
export interface RemoteFault {
  uffd: string;
  regionBytes: number;
  wssBytes: number;
  push: boolean;
  elapsedMs: number;
  touches: number;
  faults: number;
  /** Touch → resume, as the toucher thread saw it. */
  latencyUs: Percentiles;
  /** uffd_msg read → page placed: the span postcopy's own histogram times. */
  serviceUs: Percentiles;
  pushGBps: number;
  verified: boolean;
}

export async function compile(dir: string, name: string): Promise<string> {
  const out = join(dir, name);
  try {
    await run('cc', ['-O2', '-pthread', '-o', out, join(BENCH, `${name}.c`)]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('the floors are C programs and need a C compiler: install one (apt-get install gcc) so `cc` is on PATH');
    throw new Error(`cc could not build bench/${name}.c:\n${e.stderr ?? e.message}`);
  }
  return out;
}

export async function runJson<T>(program: string, args: string[]): Promise<T> {
  try {
    const { stdout } = await run(program, args, { maxBuffer: 1 << 20, timeout: 300_000 });
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`${program} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}
