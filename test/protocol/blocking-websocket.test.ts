// A page thread's socket builds its own frame headers (blocking-websocket.ts),
// so that a frame's payload can be written in parts straight from guest RAM:
// every length encoding RFC 6455 has (7-bit, 16-bit, 64-bit), masked as a
// client and unmasked as a server, must arrive at the other end as the one
// message its parts make, each send's callback once it is written. It also
// parses frames itself: what ws's Receiver accepted it must accept (masks,
// fragments, pings), and what it refused it must refuse with the same code.
import { Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
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

  it('keeps the header of each frame queued behind a full socket its own', async () => {
    const { client, server } = pair();
    // The first fills the socket; each one after it waits, its header written before the next is built.
    const lengths = [3 * 1024 * 1024, 1, 126, 65536, 0, 125, 70000];
    const received: number[] = [];
    const all = new Promise<void>((resolve) =>
      server.on('message', (data: Buffer) => {
        received.push(data.length);
        if (received.length === lengths.length) resolve();
      }),
    );
    for (const [i, length] of lengths.entries()) client.sendParts(parts(length, i));
    expect(client.bufferedAmount).toBeGreaterThan(0);
    await all;
    expect(received).toEqual(lengths);
    // A header that was overwritten desynchronizes the stream: the reader then waits for bytes that never come.
  }, 30_000);

  it('reads frames into its slabs whole: past the first, no frame starts in one slab and ends in the next', async () => {
    const { client, server } = pair();
    // Bulk frames of a 64-page run, and their pages' bytes, many slabs' worth.
    const frames = 40;
    const length = 64 * 4096 + 16;
    const copies = vi.spyOn(Buffer.prototype, 'copy');
    let intact = 0;
    const all = new Promise<void>((resolve) =>
      server.on('message', (data: Buffer) => {
        if (data.length === length && data[0] === intact % 251 && data[length - 1] === intact % 251) intact++;
        if (intact === frames) resolve();
      }),
    );
    for (let i = 0; i < frames; i++) client.sendParts([new Uint8Array(length).fill(i % 251)]);
    await all;
    // A frame's head moved to the next slab is copied; a header's bytes at most do not count.
    const headCopies = copies.mock.contexts.filter((source) => (source as Buffer).length > 14).length;
    copies.mockRestore();
    // The first frame is longer than any before it (none), so the second may straddle; then room is kept.
    expect(headCopies).toBeLessThanOrEqual(1);
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

describe.skipIf(!nativeAvailable())('a page thread socket reading frames from any RFC 6455 peer', () => {
  const { log } = memoryLog('warn');
  const MAX_PAYLOAD = 64;
  let cleanup: (() => void)[] = [];

  afterEach(() => {
    for (const c of cleanup) c();
    cleanup = [];
  });

  /** A server end under test, and the raw bytes a peer client writes and reads. */
  function serverWithRawPeer(): { server: BlockingWebSocket; peer: Socket; fromServer: () => Buffer } {
    const [a, b] = loadNative().socketPair();
    const loop = new PollLoop(log);
    const server = new BlockingWebSocket({ fd: a, isServer: true, maxPayload: MAX_PAYLOAD });
    server.on('error', () => undefined);
    server.on('close', () => loop.remove(server));
    loop.add(server);
    const peer = new Socket({ fd: b, readable: true, writable: true });
    const received: Buffer[] = [];
    peer.on('data', (chunk: Buffer) => received.push(chunk));
    peer.on('error', () => undefined);
    cleanup.push(() => {
      if (server.readyState !== server.CLOSED) server.close(1000);
      peer.destroy();
    });
    return { server, peer, fromServer: () => Buffer.concat(received) };
  }

  /** A client frame: masked with `key` (4 bytes), payload under 126 bytes. */
  function clientFrame(first: number, payload: Buffer, key = Buffer.from([0x12, 0x34, 0x56, 0x78])): Buffer {
    const masked = Buffer.from(payload);
    for (let i = 0; i < masked.length; i++) masked[i] ^= key[i & 3];
    return Buffer.concat([Buffer.from([first, 0x80 | payload.length]), key, masked]);
  }

  async function until(check: () => boolean): Promise<void> {
    for (let i = 0; i < 500 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 2));
    expect(check()).toBe(true);
  }

  it('unmasks any key and joins a fragmented message, a ping in its middle answered with a pong', async () => {
    const { server, peer, fromServer } = serverWithRawPeer();
    const message = new Promise<[Buffer, boolean]>((resolve) => server.on('message', (data: Buffer, isBinary: boolean) => resolve([Buffer.from(data), isBinary])));
    peer.write(clientFrame(0x02, Buffer.from('frag')));
    peer.write(clientFrame(0x89, Buffer.from('hey'), Buffer.from([1, 2, 3, 4])));
    peer.write(clientFrame(0x00, Buffer.from('ment')));
    peer.write(clientFrame(0x80, Buffer.from('ed!'), Buffer.from([0xff, 0, 0xff, 0])));
    expect(await message).toEqual([Buffer.from('fragmented!'), true]);
    await until(() => fromServer().length >= 5);
    expect(fromServer().subarray(0, 5)).toEqual(Buffer.from([0x8a, 0x03, ...Buffer.from('hey')]));
  });

  it.each([
    ['an RSV bit set', clientFrame(0xc2, Buffer.from('x')), 1002],
    ['an unknown opcode', clientFrame(0x83, Buffer.from('x')), 1002],
    ['a control frame without FIN', clientFrame(0x09, Buffer.from('x')), 1002],
    ['a control frame over 125 bytes', Buffer.from([0x89, 0x80 | 126, 0, 126, 0, 0, 0, 0]), 1002],
    ['a continuation with no message under way', clientFrame(0x80, Buffer.from('x')), 1002],
    ['a new message inside a fragmented one', Buffer.concat([clientFrame(0x02, Buffer.from('a')), clientFrame(0x82, Buffer.from('b'))]), 1002],
    ['a close frame of 1 byte', clientFrame(0x88, Buffer.from([3])), 1002],
    ['a close code no peer may send (1005)', clientFrame(0x88, Buffer.from([0x03, 0xed])), 1002],
    ['an unmasked frame from a client', Buffer.from([0x82, 0x01, 0x00]), 1002],
    ['a fragmented message over the limit', Buffer.concat([clientFrame(0x02, Buffer.alloc(40)), clientFrame(0x80, Buffer.alloc(40))]), 1009],
  ])('refuses %s, closing with %s on both ends', async (_what, bytes, code) => {
    const { server, peer, fromServer } = serverWithRawPeer();
    const closed = new Promise<number>((resolve) => server.on('close', (c: number) => resolve(c)));
    const messages: Buffer[] = [];
    server.on('message', (data: Buffer) => messages.push(Buffer.from(data)));
    const errors: string[] = [];
    server.on('error', (err: { code?: string }) => errors.push(err.code ?? ''));
    peer.write(bytes);
    expect(await closed).toBe(code);
    expect(messages).toEqual([]);
    expect(errors).toEqual([code === 1009 ? 'WS_ERR_MESSAGE_TOO_BIG' : 'WS_ERR_INVALID_FRAME']);
    // The close frame the server sent names the same code.
    await until(() => fromServer().length >= 4);
    const frame = fromServer();
    expect(frame[0]).toBe(0x88);
    expect(frame.readUInt16BE(2)).toBe(code);
  });
});
