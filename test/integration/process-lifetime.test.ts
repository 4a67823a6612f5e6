// A source process ends when its work does: after `quit`, and after its
// guest powered off. (The page-request thread a source starts ahead of a
// migration used to keep it running forever in both cases.)
import { afterEach, describe, expect, it } from 'vitest';
import { ControlClient } from '../../src/cli/control-client.ts';
import { childGroup } from './processes.ts';

describe('source process lifetime', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });

  it('a source exits after `quit`', async () => {
    const group = childGroup();
    cleanups.push(() => group.killAll());
    const source = group.spawn('source', ['source', '--guest', 'memwork', '--guest-args', 'passes=0 wss=1M', '--ram', '16M', '--listen', '127.0.0.1:0']);
    const control = (await source.waitFor('listening')).control as string;
    await new ControlClient(control, group.token).quit();
    expect(await source.exit()).toBe(0);
  });

  it('a source whose guest powers off exits with the guest’s exit code', async () => {
    const group = childGroup();
    cleanups.push(() => group.killAll());
    const source = group.spawn('source', ['source', '--guest', 'life', '--ram', '16M', '--listen', '127.0.0.1:0']);
    const finished = await source.waitFor('finished');
    expect(await source.exit()).toBe(finished.exitCode);
  });
});
