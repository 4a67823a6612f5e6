import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runGuest } from './helpers/run-guest.ts';

const expected = (name: string): string => fs.readFileSync(new URL(`./expected/${name}.txt`, import.meta.url), 'latin1');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-programs-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('guest programs on the machine', () => {
  it('selftest passes every instruction and trap check and exits through the finisher', async () => {
    const run = await runGuest('selftest');
    expect(run.console).toBe(expected('selftest'));
    expect(run.console).not.toMatch(/FAIL/);
    expect(run.console).toMatch(/selftest: 65 checks, 0 failed: PASS/);
    expect(run.exit).toEqual({ status: 'pass', code: 0 });
  });

  it('memwork prints its heartbeat lines and checksum', async () => {
    const run = await runGuest('memwork');
    expect(run.console).toBe(expected('memwork'));
    expect(run.exit?.code).toBe(0);
  });

  it('life draws generations into its framebuffer and counts them on the console', async () => {
    const run = await runGuest('life', { guestArgs: 'gens=3' });
    expect(run.console.split('\n').slice(1, 4)).toEqual(expected('life').split('\n').slice(1, 4));
    expect(run.exit?.code).toBe(0);
  });

  it('diskio writes, reads back and verifies blocks through the block device', async () => {
    const run = await runGuest('diskio', { disk: path.join(tmp, 'disk.img') });
    expect(run.console).toBe(expected('diskio'));
    expect(run.exit?.code).toBe(0);
  });

  it('diskio on 4 vCPUs keeps each hart on its own sectors', async () => {
    const run = await runGuest('diskio', { vcpus: 4, guestArgs: 'blocks=8 rounds=2', disk: path.join(tmp, 'disk4.img') });
    expect(run.console).toMatch(/diskio: round 2: wrote 8 blocks, verified 8\ndiskio: PASS, 0 errors\n$/);
    expect(run.exit?.code).toBe(0);
  });

  it('diskio without a disk says so and fails', async () => {
    const run = await runGuest('diskio');
    expect(run.console).toMatch(/capacity 0 sectors[\s\S]*disk too small/);
    expect(run.exit).toEqual({ status: 'fail', code: 5 });
  });

  it('guest args reach the program through the parameter block', async () => {
    const run = await runGuest('memwork', { guestArgs: 'wss=64K pattern=sequential write=100 passes=2 beat=1' });
    expect(run.console).toMatch(/^memwork: 1 harts, wss 65536 bytes per hart, pattern sequential, write 100%, passes 2\n/);
    expect(run.console).toMatch(/memwork: pass 2 sum 00000000\nmemwork: done/);
  });
});
