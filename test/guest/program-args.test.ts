// The built-in programs take their --guest-args from a parameter page and
// fall back to defaults on anything they cannot read; the host refuses such
// arguments before a guest starts, naming the key and what it accepts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkProgramArgs, PROGRAM_PARAMS } from '../../src/guest/program-args.ts';
import { postcopy } from '../integration/processes.ts';

const MIB = 1 << 20;
const refusal = (guest: string, args: string, ram = 64 * MIB, harts = 1): string => {
  try {
    checkProgramArgs(guest, args, ram, harts);
  } catch (err) {
    expect((err as { code?: string }).code).toBe('GUEST_ERR_CONFIG');
    return (err as Error).message;
  }
  throw new Error(`${guest} ${args}: accepted`);
};

describe('checkProgramArgs', () => {
  it('takes what the tests and the README pass', () => {
    for (const [guest, args] of [
      ['memwork', 'wss=512M pattern=random write=100 passes=0'],
      ['memwork', 'wss=8M pattern=sequential write=50 passes=0 beat=4'],
      ['memwork', 'wss=16M pattern=random write=100 passes=0 beat=1000000'],
      ['memwork', '  passes=0   wss=1M '],
      ['diskio', 'rounds=0 blocks=16 sectors=8'],
      ['life', 'gens=0'],
      ['selftest', ''],
    ]) {
      expect(() => checkProgramArgs(guest, args, 1024 * MIB, 1)).not.toThrow();
    }
  });

  it('names the unknown key and the known ones', () => {
    expect(refusal('memwork', 'wsss=1M')).toBe('memwork has no parameter "wsss"; its parameters are wss, pattern, write, passes, beat');
    expect(refusal('selftest', 'x=1')).toBe('selftest has no parameter "x"; it takes no parameters');
  });

  it('names the value that is not a number, not a choice, or out of range', () => {
    expect(refusal('memwork', 'wss=abc')).toMatch(/^memwork: wss=abc is not a whole number/);
    expect(refusal('memwork', 'wss=-4K')).toMatch(/^memwork: wss=-4K is not a whole number/);
    expect(refusal('memwork', 'pattern=zigzag')).toBe('memwork: pattern=zigzag is not one of sequential, random, hotcold');
    expect(refusal('memwork', 'write=150')).toBe('memwork: write=150 is out of range: 0 to 100');
    // 8 GiB wraps around in the guest's 32 bits.
    expect(refusal('memwork', 'wss=8G')).toMatch(/wss=8G is out of range: 4096 to 4294967295/);
    expect(refusal('diskio', 'sectors=129')).toMatch(/sectors=129 is out of range: 1 to 128/);
    expect(refusal('life', 'gens')).toBe('guest args are "key=value key=value"; "gens" is not');
  });

  it("refuses a memwork working set that cannot fit the vCPUs' share of RAM", () => {
    expect(refusal('memwork', 'wss=2G', 16 * MIB)).toBe('memwork: wss=2G for each of 1 vCPU(s) does not fit in 16 MiB of RAM; lower wss or raise --ram');
    expect(refusal('memwork', 'wss=20M', 64 * MIB, 4)).toMatch(/wss=20M for each of 4 vCPU\(s\)/);
    expect(() => checkProgramArgs('memwork', 'wss=15M', 64 * MIB, 4)).not.toThrow();
  });

  it('leaves an ELF given by path, and no args at all, to the guest', () => {
    expect(() => checkProgramArgs('./mine.elf', 'anything goes', 16 * MIB, 1)).not.toThrow();
    expect(() => checkProgramArgs('memwork', undefined, 16 * MIB, 1)).not.toThrow();
  });

  it('accepts every in-range value of every number parameter, with any suffix that keeps it in range', () => {
    const numbers = Object.entries(PROGRAM_PARAMS).flatMap(([guest, params]) =>
      Object.entries(params).flatMap(([key, spec]) => (spec.kind === 'number' ? [{ guest, key, min: spec.min ?? 0, max: Math.min(spec.max ?? 0xffffffff, 1 << 20) }] : [])),
    );
    fc.assert(
      fc.property(fc.constantFrom(...numbers).chain((p) => fc.tuple(fc.constant(p), fc.integer({ min: p.min, max: p.max }))), ([p, n]) => {
        checkProgramArgs(p.guest, `${p.key}=${n}`, 2048 * MIB, 1);
        if (n % 1024 === 0 && n / 1024 >= p.min) checkProgramArgs(p.guest, `${p.key}=${n / 1024}K`, 2048 * MIB, 1);
      }),
    );
  });
});

describe('postcopy commands with bad guest args', () => {
  it('refuse them before starting anything, naming the key', async () => {
    for (const cmd of [['run'], ['source', '--listen', '127.0.0.1:0'], ['demo']]) {
      const r = await postcopy([...cmd, '--guest', 'memwork', '--guest-args', 'wss=abc']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/memwork: wss=abc is not a whole number .*\[GUEST_ERR_CONFIG\]/);
    }
  });
});
