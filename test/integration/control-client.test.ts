// The control client that `postcopy migrate` and the demo use, against a
// real `postcopy source`: on a port that fetch() refuses to connect to, and
// against endpoints that are not a source at all.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ControlClient } from '../../src/cli/control-client.ts';
import { childGroup } from './processes.ts';

// Ports the fetch standard blocks ("bad ports"); fetch fails on them with
// "bad port" before connecting, whatever listens there.
const FETCH_BLOCKED_PORTS = [6000, 6665, 6666, 6667, 6668, 6669, 10080, 5060];

function listen(server: Server, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
}

describe('the control client', () => {
  it('reaches a source listening on a port that fetch() refuses', async () => {
    let port: number | undefined;
    for (const candidate of FETCH_BLOCKED_PORTS) {
      const probe = createServer();
      if (await listen(probe, candidate)) {
        await new Promise((r) => probe.close(r));
        port = candidate;
        break;
      }
    }
    if (port === undefined) {
      console.log(`control client bad-port test skipped: none of ports ${FETCH_BLOCKED_PORTS.join(', ')} is free here`);
      return;
    }
    await expect(fetch(`http://127.0.0.1:${port}/info`)).rejects.toThrow();
    const group = childGroup();
    onTestFinished(() => group.killAll());
    const source = group.spawn('source', ['source', '--guest', 'life', '--ram', '16M', '--paused', '--listen', `127.0.0.1:${port}`]);
    expect((await source.waitFor('listening')).control).toBe(`http://127.0.0.1:${port}`);
    const client = new ControlClient(`http://127.0.0.1:${port}`, group.token);
    expect(await client.infoMigrate()).toBeNull();
    await expect(new ControlClient(`http://127.0.0.1:${port}`, 'f'.repeat(32)).infoMigrate()).rejects.toMatchObject({ code: 'MONITOR_ERR_AUTH' });
  });

  it('says so when the endpoint answers something that is not JSON, or the URL is not http', async () => {
    const server = createServer((_req, res) => res.end('<html>not a source</html>'));
    await listen(server, 0);
    onTestFinished(() => void server.close());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await expect(new ControlClient(url, 't').infoMigrate()).rejects.toMatchObject({
      code: 'CLI_ERR_CONTROL',
      message: expect.stringMatching(/answered HTTP 200 with something that is not JSON \("<html>not a source<\/html>"\); is it a postcopy source's control endpoint\?/),
    });
    await expect(new ControlClient('ws://127.0.0.1:4444', 't').infoMigrate()).rejects.toMatchObject({
      code: 'CLI_ERR_CONTROL',
      message: expect.stringMatching(/must be an http:\/\/ or https:\/\/ URL, got ws:\/\/127\.0\.0\.1:4444/),
    });
  });
});
