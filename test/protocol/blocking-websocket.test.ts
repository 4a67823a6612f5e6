// A page thread's socket builds its own frame headers (blocking-websocket.ts),
// so that a frame's payload can be written in parts straight from guest RAM:
// every length encoding RFC 6455 has (7-bit, 16-bit, 64-bit), masked as a
// client and unmasked as a server, must reach ws's Receiver at the other end
// as the one message its parts make, each send's callback once it is written.
import { afterEach, describe, expect, it } from 'vitest';
import { BlockingWebSocket } from '../../src/protocol/blocking-websocket.ts';
import { PollLoop } from '../../src/poll-loop.ts';
import { loadNative, nativeAvailable } from '../../src/uffd/native.ts';
import { memoryLog } from './log-sink.ts';

// Around each boundary of the header's length field, and past what one write takes.
const LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 65537, 3 * 1024 * 1024];

function parts(length: number, seed: number): Uint8Array[] {
  const whole = new Uint8Array(length);
  for (let i = 0; i < length; i++) whole[i] = (i * 31 + seed) & 0xff;
  // Three parts of uneven sizes, one of them possibly empty.
  const a = Math.floor(length / 3);
  const b = Math.floor((2 * length) / 3) + 1;
  return [whole.subarray(0, a), whole.subarray(a, Math.min(b, length)), whole.subarray(Math.min(b, length))];
}

describe.skipIf(!nativeAvailable())('a page thread socket writing frames in parts', () => {
  const { log } = memoryLog('warn');
  let ends: BlockingWebSocket[] = [];

  afterEach(() => {
    for (const end of ends) if (end.readyState !== end.CLOSED) end.close(1000);
    ends = [];
  });

  function pair(): { client: BlockingWebSocket; server: BlockingWebSocket } {
    const [a, b] = loadNative().socketPair();
    const loop = new PollLoop(log);
    const maxPayload = 4 * 1024 * 1024;
    const client = new BlockingWebSocket({ fd: a, isServer: false, maxPayload });
    const server = new BlockingWebSocket({ fd: b, isServer: true, maxPayload });
    ends = [client, server];
    for (const end of ends) {
      end.on('close', () => loop.remove(end));
      loop.add(end);
    }
    return { client, server };
  }

  it.each([
    ['client (masked with zeros)', 'client'],
    ['server (unmasked)', 'server'],
  ] as const)('as a %s, delivers each message whole and in order, every length encoding', async (_name, side) => {
    const { client, server } = pair();
    const [sender, receiver] = side === 'client' ? [client, server] : [server, client];
    const received: Buffer[] = [];
    const all = new Promise<void>((resolve) =>
      receiver.on('message', (data: Buffer, isBinary: boolean) => {
        expect(isBinary).toBe(true);
        // Views of the reader's slabs: valid only while the listener runs.
        received.push(Buffer.from(data));
        if (received.length === LENGTHS.length) resolve();
      }),
    );
    const written: number[] = [];
    const sent = LENGTHS.map((length, i) => {
      const p = parts(length, i);
      sender.sendParts(p, (err) => {
        expect(err).toBeUndefined();
        written.push(i);
      });
      return Buffer.concat(p);
    });
    await all;
    expect(received.map((m) => m.length)).toEqual(LENGTHS);
    received.forEach((m, i) => expect(Buffer.compare(m, sent[i])).toBe(0));
    expect(written).toEqual(LENGTHS.map((_, i) => i));
    expect(sender.bufferedAmount).toBe(0);
  });

  it('answers a close with a close, and a send after it fails through its callback', async () => {
    const { client, server } = pair();
    const closed = new Promise<number>((resolve) => server.on('close', (code: number) => resolve(code)));
    client.close(4001, 'done');
    expect(await closed).toBe(4001);
    const error = await new Promise<Error | undefined>((resolve) => server.sendParts([new Uint8Array(4)], resolve));
    expect(error?.message).toMatch(/not open/);
  });
});
