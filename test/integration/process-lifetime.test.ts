// A source or destination process ends when its work does: after `quit`,
// after its guest powered off, and at once, with the reason, when it cannot
// listen. (The page-request thread a source starts ahead of a migration
// used to keep it running forever in the first two cases; a port in use
// crashed both with a stack trace, or left the source hanging.)
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ControlClient } from '../../src/cli/control-client.ts';
import { childGroup, postcopy } from './processes.ts';

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
});
