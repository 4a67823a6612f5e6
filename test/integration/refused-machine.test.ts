// A destination that cannot build the machine (here: the disk path it was
// told to use does not exist) refuses it before the guest stops: the source
// reports the destination's own reason, keeps the guest running, and loses
// nothing, proven by migrating it again and matching a run that never migrated.
import { describe, expect, it, onTestFinished } from 'vitest';
import { ControlClient } from '../../src/cli/control-client.ts';
import { childGroup, expectMigratesIntact } from './processes.ts';

const GUEST = ['--guest', 'memwork', '--guest-args', 'wss=4M pattern=random write=100 passes=0', '--ram', '64M'];
const N = '20000000';

describe('a destination that cannot build the machine', () => {
  it('says why, and the guest keeps running on the source with nothing lost', async () => {
    const group = childGroup();
    const { token, spawn, killAll } = group;
    onTestFinished(killAll);
    const first = spawn('destination 1', ['destination', '--listen', '127.0.0.1:0', '--instructions', N, '--disk', '/nonexistent/postcopy-disk.img']);
    const source = spawn('source', ['source', ...GUEST, '--instructions', N, '--listen', '127.0.0.1:0', '--paused']);
    const control = new ControlClient((await source.waitFor('listening')).control as string, token);

    await control.migrate({ to: (await first.waitFor('listening')).url as string, mode: 'postcopy', afterInstructions: 1_000_000 });
    const refused = await control.migrationEnd();
    expect(refused.status).toBe('failed');
    expect(refused.error).toMatch(/\/nonexistent\/postcopy-disk\.img/);
    expect(await first.exit()).not.toBe(0);

    await expectMigratesIntact(group, source, control, GUEST, N);
  });
});
