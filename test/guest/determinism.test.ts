// Runs are a function of the image, the arguments and the instruction count:
// the same run twice gives the same stateHash, and saving at K then restoring
// in a new process and running on to N gives the hash of the straight run.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { readGuestImage } from '../../src/guest/guest-images.ts';
import { Machine } from '../../src/guest/machine.ts';

const exec = promisify(execFile);
const cli = fileURLToPath(new URL('../../bin/postcopy.js', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-determinism-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface RunFigures {
  instructions: number;
  stateHash: string;
  exitCode: number;
}

async function postcopyRun(args: string[]): Promise<RunFigures> {
  const { stdout } = await exec(process.execPath, [cli, 'run', '--json', '--uffd', 'none', ...args], { maxBuffer: 16 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as RunFigures;
}

const cases = [
  { guest: 'memwork', vcpus: 1, args: 'passes=0 wss=512K', n: 3_000_000, ks: [1, 777_777, 2_500_001] },
  { guest: 'memwork', vcpus: 4, args: 'passes=0 wss=256K pattern=hotcold', n: 1_500_000, ks: [250_000, 1_000_003] },
  { guest: 'life', vcpus: 1, args: 'gens=0', n: 4_000_000, ks: [1_999_999] },
];

describe('determinism across runs and processes', () => {
  for (const c of cases) {
    it(`${c.guest} on ${c.vcpus} vCPU(s): save at K in one process, restore in another, run to N = the straight run`, async () => {
      const base = ['--guest', c.guest, '--vcpus', String(c.vcpus), '--guest-args', c.args];
      const [straight, again] = await Promise.all([
        postcopyRun([...base, '--instructions', String(c.n)]),
        postcopyRun([...base, '--instructions', String(c.n)]),
      ]);
      expect(again.stateHash).toBe(straight.stateHash);
      expect(straight.instructions).toBe(c.n * c.vcpus);
      for (const k of c.ks) {
        const snapshot = path.join(tmp, `${c.guest}-${c.vcpus}-${k}.snap`);
        const first = await postcopyRun([...base, '--instructions', String(k), '--save', snapshot]);
        expect(first.instructions).toBe(k * c.vcpus);
        const rest = await postcopyRun(['--guest', c.guest, '--restore', snapshot, '--instructions', String(c.n)]);
        expect(rest.instructions).toBe((c.n - k) * c.vcpus);
        expect(rest.stateHash, `save at ${k}, restore, run to ${c.n}`).toBe(straight.stateHash);
      }
    });
  }

  it('diskio with DMA in flight: save/restore in a new process over a copy of the disk gives the straight run', async () => {
    const straightDisk = path.join(tmp, 'straight.img');
    const splitDisk = path.join(tmp, 'split.img');
    const base = ['--guest', 'diskio', '--guest-args', 'rounds=0 blocks=4'];
    const straight = await postcopyRun([...base, '--disk', straightDisk, '--instructions', '2000000']);
    const snapshot = path.join(tmp, 'diskio.snap');
    await postcopyRun([...base, '--disk', splitDisk, '--instructions', '1234567', '--save', snapshot]);
    const rest = await postcopyRun(['--guest', 'diskio', '--disk', splitDisk, '--restore', snapshot, '--instructions', '2000000']);
    expect(rest.stateHash).toBe(straight.stateHash);
    expect(fs.readFileSync(splitDisk).equals(fs.readFileSync(straightDisk))).toBe(true);
  });

  it('pausing and resuming at arbitrary moments does not change where the run ends up', async () => {
    const image = readGuestImage('memwork');
    const options = { image, ramSize: 32 << 20, vcpus: 2, guestArgs: 'passes=0', backend: 'shared' as const };
    const straight = Machine.create(options);
    const interrupted = Machine.create(options);
    try {
      await straight.runUntil(2_000_000);
      interrupted.setStopAt(2_000_000);
      await interrupted.start();
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const times = await interrupted.pause();
        expect(times.every((t) => t <= 2_000_000)).toBe(true);
        interrupted.resume();
      }
      const reports = await interrupted.runUntil(2_000_000);
      expect(reports.map((r) => r.time)).toEqual([2_000_000, 2_000_000]);
      expect(interrupted.stateHash()).toBe(straight.stateHash());
    } finally {
      await Promise.all([straight.close(), interrupted.close()]);
    }
  });

  it('restoring in-process into a fresh machine over a copy of RAM continues exactly', async () => {
    const image = readGuestImage('life');
    const options = { image, ramSize: 16 << 20, guestArgs: 'gens=0', backend: 'shared' as const };
    const straight = Machine.create(options);
    const source = Machine.create(options);
    const target = Machine.create({ ...options, backend: 'sim' });
    try {
      await straight.runUntil(3_000_000);
      await source.runUntil(1_000_000);
      const state = source.save();
      target.ram.bytes().set(source.ram.bytes());
      target.restore(state);
      await target.runUntil(3_000_000);
      expect(target.stateHash()).toBe(straight.stateHash());
      expect(target.consoleOffset).toBe(straight.consoleOffset);
      expect(source.consoleText() + target.consoleText()).toBe(straight.consoleText());
    } finally {
      await Promise.all([straight.close(), source.close(), target.close()]);
    }
  });
});
