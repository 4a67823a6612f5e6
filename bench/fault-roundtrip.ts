// Fault round trip (a worker touches a missing page → the main thread places
// it → the worker resumes) over distinct random pages of a 1 GiB region, for
// the kernel userfaultfd and the software backend, next to the same loop in C
// (bench/fault-roundtrip.c, built with cc into a temporary directory and run
// in this invocation). The three run in turn, round after round, so load from
// elsewhere on the (shared, 2-core) machine falls on all of them alike.
// Prints p50/p90/p99 over every round and each p50's ratio to the C floor;
// the target is the kernel path within 1.5× of it. Never passes or fails.
//
//   npm run bench:faults [-- TOUCHES [ROUNDS]]        (default 20000 pages, 3 rounds; --help)
//
// Where the scheduler puts the two threads moves every figure: a wake-up on
// another CPU costs ~8 µs more here than a switch on the same one, so the C
// floor alone ranges ~10–20 µs. `taskset -c 0 npm run bench:faults` pins all
// three to one CPU for a steadier comparison.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import * as hdr from 'hdr-histogram-js';
import { integer } from '../src/cli/options.ts';
import { createLogger } from '../src/log.ts';
import { openPath, openUserfaultfd } from '../src/uffd/open.ts';
import { allocateRegion, type Backend } from '../src/uffd/region.ts';
import { startWorker, workerResult } from '../src/worker.ts';
import type { ToucherData } from './fault-roundtrip.toucher.ts';

const REGION = 1 << 30;
const PAGE = 4096;
const WARMUP = 1000;
const SEED = 0x9e3779b9;
const TARGET_RATIO = 1.5;
const FILL = 0x5a;

interface Figure {
  name: string;
  detail: string;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  count: number;
}

/** Byte offsets of `count` distinct random pages (a partial Fisher-Yates shuffle). */
function randomOffsets(count: number, pages: number, seed: number): Float64Array {
  const order = new Uint32Array(pages).map((_, i) => i);
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
  const offsets = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const j = i + (next() % (pages - i));
    [order[i], order[j]] = [order[j], order[i]];
    offsets[i] = order[i] * PAGE;
  }
  return offsets;
}

function figure(name: string, detail: string, nanoseconds: ArrayLike<number>): Figure {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60e9, numberOfSignificantValueDigits: 3 });
  for (let i = 0; i < nanoseconds.length; i++) h.recordValue(Math.max(1, Math.round(nanoseconds[i])));
  const us = (v: number): number => v / 1000;
  return {
    name,
    detail,
    p50: us(h.getValueAtPercentile(50)),
    p90: us(h.getValueAtPercentile(90)),
    p99: us(h.getValueAtPercentile(99)),
    max: us(h.maxValue),
    count: h.totalCount,
  };
}

interface Sample {
  detail: string;
  nanoseconds: ArrayLike<number>;
}

function buildC(dir: string): string {
  const binary = path.join(dir, 'fault-roundtrip');
  const source = fileURLToPath(new URL('./fault-roundtrip.c', import.meta.url));
  execFileSync('cc', ['-O2', '-pthread', '-Wall', '-o', binary, source], { stdio: ['ignore', 'ignore', 'inherit'] });
  return binary;
}

function measureC(binary: string, touches: number, seed: number): Sample {
  const out = execFileSync(binary, [String(REGION), String(WARMUP), String(touches), String(seed)], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const lines = out.trim().split('\n');
  const accessPath = /^# path (\S+)/.exec(lines[0])?.[1] ?? '?';
  return { detail: `${accessPath}, poll + read + UFFDIO_COPY thread`, nanoseconds: lines.slice(1).map(Number) };
}

async function measure(backend: Backend, touches: number, seed: number): Promise<Sample | string> {
  const logger = createLogger({ level: 'warn' });
  const uffd = backend === 'sim' ? openPath('sim', { logger }) : openUserfaultfd({ logger });
  if (uffd.backend !== backend) {
    uffd.close();
    return 'no kernel userfaultfd here (see `postcopy doctor`)';
  }
  const region = allocateRegion(REGION, backend);
  let registered = false;
  try {
    uffd.register(region.address, REGION);
    registered = true;
    const page = new Uint8Array(PAGE).fill(FILL);
    uffd.on('events', (batch) => {
      for (const e of batch) if (e.type === 'pagefault') uffd.copy(e.address, page);
    });
    const offsets = randomOffsets(WARMUP + touches, REGION / PAGE, seed);
    const latencies = new SharedArrayBuffer(touches * 8);
    const worker = startWorker(new URL('./fault-roundtrip.toucher.ts', import.meta.url), {
      handle: region.handle,
      offsets,
      warmup: WARMUP,
      latencies,
    } satisfies ToucherData);
    const done = await workerResult<{ sum: number; aborted: boolean }>(worker);
    if (done.aborted || done.sum !== FILL * (WARMUP + touches)) throw new Error(`${backend}: the worker read wrong bytes`);
    const detail = backend === 'sim' ? 'Atomics gate, waitAsync on the main loop' : `path ${uffd.path}, libuv poll on the main loop`;
    return { detail, nanoseconds: new Float64Array(latencies) };
  } finally {
    // Most of the region is still missing, as intended: unregistered first so
    // close() neither scans it nor warns about it.
    if (registered) uffd.unregister(region.address, REGION);
    uffd.close();
    region.release();
  }
}

function formatRow(f: Figure, floor: Figure): string {
  const us = (v: number): string => `${v.toFixed(1).padStart(8)} µs`;
  const ratio = `${(f.p50 / floor.p50).toFixed(2)}×`;
  return `  ${f.name.padEnd(17)} ${us(f.p50)} ${us(f.p90)} ${us(f.p99)} ${ratio.padStart(7)}   ${f.detail}\n`;
}

// Pages a round touches, after its warm-up, all distinct within the region.
const MAX_TOUCHES = REGION / PAGE - WARMUP;
const [touches, rounds] = new Command('bench:faults')
  .description('fault round trip, kernel and software backends, against the same loop in C')
  .argument('[touches]', `distinct pages each round touches, 1 to ${MAX_TOUCHES}`, integer(1, MAX_TOUCHES), 20_000)
  .argument('[rounds]', 'rounds, 1 to 100', integer(1, 100), 3)
  .parse().processedArgs as [number, number];
const NAMES = { c: 'C floor', kernel: 'kernel backend', sim: 'software backend' } as const;
type Row = keyof typeof NAMES;
const samples: Record<Row, Sample[]> = { c: [], kernel: [], sim: [] };
const skipped = new Map<Row, string>();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-bench-'));
try {
  const binary = buildC(dir);
  for (let round = 0; round < rounds; round++) {
    // A new set of pages each round, the same set for all three.
    const seed = SEED + round;
    samples.c.push(measureC(binary, touches, seed));
    for (const backend of ['kernel', 'sim'] as const) {
      const sample = await measure(backend, touches, seed);
      if (typeof sample === 'string') skipped.set(backend, sample);
      else samples[backend].push(sample);
    }
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

function pooled(row: Row): Figure | null {
  const all = samples[row];
  if (all.length === 0) return null;
  return figure(NAMES[row], all[0].detail, all.flatMap((s) => Array.from(s.nanoseconds)));
}

process.stdout.write(
  `fault round trip, ${rounds} round(s) of ${touches} distinct random pages of a 1 GiB region (after ${WARMUP} warm-up each), ` +
    `touch in a worker → resume\n` +
    `  ${''.padEnd(17)} ${'p50'.padStart(11)} ${'p90'.padStart(11)} ${'p99'.padStart(11)}   p50/C\n`,
);
const floor = pooled('c')!;
const figures: Figure[] = [];
for (const row of ['c', 'kernel', 'sim'] as const) {
  const f = pooled(row);
  if (!f) {
    process.stdout.write(`  ${NAMES[row]}: skipped, ${skipped.get(row)}\n`);
    continue;
  }
  figures.push(f);
  process.stdout.write(formatRow(f, floor));
}
const kernel = figures.find((f) => f.name === NAMES.kernel);
if (kernel) {
  const ratio = kernel.p50 / floor.p50;
  const perRound = samples.kernel.map((k, i) => {
    const c = figure('', '', samples.c[i].nanoseconds);
    return `${(figure('', '', k.nanoseconds).p50 / c.p50).toFixed(2)}×`;
  });
  process.stdout.write(
    `kernel p50 is ${ratio.toFixed(2)}× the C floor (target ≤ ${TARGET_RATIO}×: ${ratio <= TARGET_RATIO ? 'met' : 'missed'}); ` +
      `per round: ${perRound.join(', ')}\n`,
  );
}
const results = fileURLToPath(new URL('../.bench-results/', import.meta.url));
fs.mkdirSync(results, { recursive: true });
fs.writeFileSync(
  path.join(results, 'fault-roundtrip.json'),
  `${JSON.stringify({ touches, rounds, warmup: WARMUP, regionBytes: REGION, unit: 'µs', figures }, null, 2)}\n`,
);
