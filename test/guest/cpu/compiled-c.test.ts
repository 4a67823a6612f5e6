// Code from a real compiler (gcc -march=rv32im -O2, fixtures/cpu-check.c):
// the expected lines are what the same C prints when built for the host.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ENGINES, machine, RAM_BASE } from './machine.ts';

const EXPECTED = `crc32=4641a512
primes=000008d6
fib=00001a6d
sorted=ad25b5e8
mul64=d70a3d5f
div64=00124924
mod64=1a3277f3
sdiv64=ba0adf83
switch=00029afe
div=fffffffd
rem=ffffffff
divu=7ffffffc
`;

function image(name: string): Uint32Array {
  const bytes = readFileSync(new URL(`./fixtures/${name}.bin`, import.meta.url));
  const words = new Uint32Array(Math.ceil(bytes.length / 4));
  new Uint8Array(words.buffer).set(bytes);
  return words;
}

describe.each(ENGINES)('compiled C (%s engine)', (engine) => {
  it('cpu-check prints what the host build prints and reports pass', () => {
    const m = machine({ words: image('cpu-check'), base: RAM_BASE, labels: new Map() }, { engine, ramSize: 8 << 20 });
    expect(m.hart.run(200_000_000)).toBe('mmio-stop');
    const uart = m.mmioLog
      .filter((e) => e.startsWith('store1 10000000 '))
      .map((e) => String.fromCharCode(parseInt(e.split(' ')[2], 16)))
      .join('');
    expect(uart).toBe(EXPECTED);
    expect(m.mmioLog.at(-1)).toBe('finish 5555');
  });
});
