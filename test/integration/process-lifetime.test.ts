// A source or destination process ends when its work does: after `quit`,
// after its guest powered off, and at once, with the reason, when it cannot
// listen. (The page-request thread a source starts ahead of a migration
// used to keep it running forever in the first two cases; a port in use
// crashed both with a stack trace, or left the source hanging.) A demo
// stopped by a signal takes its children and its temporary files with it.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ControlClient } from '../../src/cli/control-client.ts';
import {
  BIN,
  childGroup,
  DIRTYING_GUEST,
  DIRTYING_INSTRUCTIONS,
  expectArrivedIntact,
  NEVER_FITS_MS,
  PACED_ROUNDS,
  PlainPostcopy,
  postcopy,
  type ProcessEnd,
  sourceAndDestination,
  untilMigration,
  WRITTEN_8M_GUEST,
} from './processes.ts';

/** The `postcopy` processes `pid` started (Linux: /proc/PID/task/TID/children; tsx's esbuild is a child too). */
function postcopyChildren(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`)
    .flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number))
    .filter((child) => readFileSync(`/proc/${child}/cmdline`, 'utf8').includes(BIN));
}

/** Running, as opposed to gone or a zombie waiting to be reaped. */
function running(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

describe('source and destination process lifetime', () => {
  it('a source exits after `quit`', async () => {
    const group = childGroup();
    onTestFinished(() => group.killAll());
    const source = group.spawn('source', ['source', '--guest', 'memwork', '--guest-args', 'passes=0 wss=1M', '--ram', '16M', '--listen', '127.0.0.1:0']);
    const control = (await source.waitFor('listening')).control as string;
    await new ControlClient(control, group.token).quit();
    expect(await source.exit()).toBe(0);
  });

  it('a source and a destination say when they are ready to migrate', async () => {
    const group = childGroup();
    onTestFinished(() => group.killAll());
    const source = group.spawn('source', ['source', '--guest', 'memwork', '--guest-args', 'passes=0 wss=1M', '--ram', '16M', '--listen', '127.0.0.1:0', '--paused']);
    const destination = group.spawn('destination', ['destination', '--listen', '127.0.0.1:0']);
    await Promise.all([source.waitFor('ready'), destination.waitFor('ready')]);
    await new ControlClient((await source.waitFor('listening')).control as string, group.token).quit();
    expect(await source.exit()).toBe(0);
  });

  it('a source whose guest powers off exits with the guest’s exit code', async () => {
    const group = childGroup();
    onTestFinished(() => group.killAll());
    const source = group.spawn('source', ['source', '--guest', 'life', '--ram', '16M', '--listen', '127.0.0.1:0']);
    const finished = await source.waitFor('finished');
    expect(await source.exit()).toBe(finished.exitCode);
  });

  it('a source told to quit during a precopy cancels it first, so that the destination hears why', async () => {
    const group = childGroup();
    onTestFinished(() => group.killAll());
    const { source, destination, control, to } = await sourceAndDestination(group, DIRTYING_GUEST, DIRTYING_INSTRUCTIONS);
    await control.migrate({ to, mode: 'precopy', maxRounds: 10_000, downtimeLimitMs: NEVER_FITS_MS, ...PACED_ROUNDS, afterInstructions: 1_000_000 });
    await untilMigration(control, 'precopy-active');
    expect(await control.quit()).toEqual({ ok: true, message: 'cancelling the migration, then quitting' });
    expect(await source.exit()).toBe(0);
    expect((await destination.waitFor('failed')).message).toMatch(/the source cancelled the migration: migration cancelled: the source was told to quit/);
  });

  it('a source told to quit during a postcopy quits once it completes: the guest arrives intact, and the source does not crash', async () => {
    const group = childGroup();
    onTestFinished(() => group.killAll());
    const end = '3100000';
    const { source, destination, control, to } = await sourceAndDestination(group, WRITTEN_8M_GUEST, end);
    // 8 MiB of data pages at 1 MiB/s: seconds of postcopy-active to quit in.
    await control.migrate({ to, mode: 'postcopy', afterInstructions: 3_000_000, maxPostcopyBandwidth: 1024 * 1024 });
    await untilMigration(control, 'postcopy-active');
    expect(await control.quit()).toEqual({ ok: true, message: expect.stringMatching(/^quitting once the migration ends: the guest runs on the destination/) });
    expect(await source.waitFor('completed')).toMatchObject({ info: { status: 'completed' } });
    expect(await source.exit()).toBe(0);
    await expectArrivedIntact(source, destination, WRITTEN_8M_GUEST, end);
  });

  it('a source or destination that cannot listen says where and why, and exits', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => void taken.close());
    const address = `127.0.0.1:${(taken.address() as AddressInfo).port}`;
    const env = { POSTCOPY_TOKEN: 'a'.repeat(32) };
    const [source, destination] = await Promise.all([
      postcopy(['source', '--guest', 'life', '--ram', '16M', '--listen', address], env),
      postcopy(['destination', '--listen', address], env),
    ]);
    expect(source.code).toBe(2);
    expect(source.stderr).toContain(
      `postcopy source: the source's control endpoint cannot listen on ${address}: something else is listening there already (another postcopy source or destination?); pick another --listen HOST:PORT (port 0 takes any free one) [CLI_ERR_LISTEN]`,
    );
    expect(destination.code).toBe(2);
    expect(destination.stderr).toContain(`postcopy destination: the destination cannot listen on ${address}: something else is listening there already`);
  });

  /** A demo whose guest runs on the source for long; resolves once it is up, with what `stop` then made of it. */
  async function stoppedDemo(stop: (demo: PlainPostcopy) => void): Promise<{ stderr: string; exit: ProcessEnd; work: string; left: string[]; children: number[] }> {
    // A TMPDIR of its own, so that no other test's demo is seen there (tsx keeps its cache there too).
    const tmp = mkdtempSync(join(tmpdir(), 'postcopy-lifetime-'));
    const demoDirectories = (): string[] => readdirSync(tmp).filter((name) => name.startsWith('postcopy-demo-'));
    onTestFinished(() => rmSync(tmp, { recursive: true, force: true }));
    const demo = new PlainPostcopy(['demo', '--after-instructions', '2000000000', '--instructions', '4000000000'], { TMPDIR: tmp, POSTCOPY_LOG: 'info' });
    onTestFinished(() => void demo.process.kill('SIGKILL'));
    await demo.waitForStderr('guest running; control endpoint up');
    const [work, ...others] = demoDirectories();
    expect(work).toBeDefined();
    expect(others).toEqual([]);
    const children = postcopyChildren(demo.process.pid!);
    expect(children).toHaveLength(2);
    stop(demo);
    const exit = await demo.exit();
    return { stderr: demo.stderr, exit, work: join(tmp, work!), left: demoDirectories(), children };
  }

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`a demo stopped by ${signal} stops its source and destination, removes its temporary files, and dies of the signal`, async () => {
      const { stderr, exit, work, left, children } = await stoppedDemo((demo) => demo.process.kill(signal));
      expect(exit.signal).toBe(signal);
      expect(stderr).toContain(`postcopy demo: ${signal}: stopped the source and destination, removed ${work}`);
      expect(left).toEqual([]);
      await expect.poll(() => children.filter(running), { timeout: 30_000 }).toEqual([]);
    });
  }

  it('a demo whose standard output is closed (piped to head, say) also stops its children and removes its files', async () => {
    const { exit, left, children } = await stoppedDemo((demo) => demo.process.stdout!.destroy());
    expect(exit).toEqual({ code: 1, signal: null });
    expect(left).toEqual([]);
    await expect.poll(() => children.filter(running), { timeout: 30_000 }).toEqual([]);
  });
});
