// The connection breaks while postcopy runs: the guest already runs on the
// destination and part of its RAM is still only on the source, so both sides
// must pause, the source must reconnect on its own, and the guest must end
// exactly where an unmigrated run does. Real processes; the break is real too:
// a TCP relay between them drops every connection it carries.
import { createServer, connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ControlClient } from '../../src/cli/control-client.ts';
import { childGroup, reference } from './processes.ts';

const GUEST = ['--guest', 'memwork', '--guest-args', 'wss=192M pattern=random write=100 passes=0', '--ram', '256M'];
const N = '60000000';

/** Forwards 127.0.0.1:port to `target`; cut() drops every connection so far and keeps accepting. */
async function relay(target: number): Promise<{ port: number; cut(): number; close(): void }> {
  const live = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      live.add(s);
      s.on('close', () => live.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut() {
      const n = live.size;
      for (const s of live) s.destroy();
      return n;
    },
    close() {
      for (const s of live) s.destroy();
      server.close();
    },
  };
}

describe('postcopy recovery', () => {
  it('a connection lost mid-postcopy pauses both sides, the source reconnects, and the guest loses nothing', async () => {
    const { token, spawn, killAll } = childGroup();
    let link: Awaited<ReturnType<typeof relay>> | undefined;
    try {
      const destination = spawn('destination', ['destination', '--listen', '127.0.0.1:0', '--instructions', N]);
      const source = spawn('source', ['source', ...GUEST, '--instructions', N, '--listen', '127.0.0.1:0', '--paused']);
      const destinationUrl = new URL((await destination.waitFor('listening')).url as string);
      link = await relay(Number(destinationUrl.port));
      const control = new ControlClient((await source.waitFor('listening')).control as string, token);

      await control.migrate({ to: `ws://127.0.0.1:${link.port}`, mode: 'postcopy', afterInstructions: 2_000_000 });
      const seen = new Set<string>();
      let cutWhileMissing = -1;
      for (;;) {
        const info = await control.infoMigrate();
        if (info) seen.add(info.status);
        if (info?.status === 'postcopy-active' && cutWhileMissing < 0) {
          expect(link.cut()).toBeGreaterThan(0);
          cutWhileMissing = info.remainingPages;
        }
        if (info && (info.status === 'completed' || info.status === 'failed')) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      const end = await control.migrationEnd();
      expect(end.error).toBeNull();
      expect(end.status).toBe('completed');
      // The cut happened with pages still on the source, and the source saw itself paused.
      expect(cutWhileMissing).toBeGreaterThan(0);
      expect(seen.has('postcopy-paused')).toBe(true);

      const finished = await destination.waitFor('finished');
      const straight = await reference([...GUEST, '--instructions', N]);
      expect(finished.stateHash).toBe(straight.stateHash);
      expect(source.consoleText + destination.consoleText).toBe(straight.console);
    } finally {
      link?.close();
      killAll();
    }
  });
});
