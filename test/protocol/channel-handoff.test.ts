// The urgent channel's socket moves to another thread after the handshake
// (channel-handoff.ts leans on ws internals): after release and adoption both
// directions still carry validated messages, masked as each role must, and
// a channel with unread bytes refuses to move.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { generateSessionId } from '../../src/protocol/auth.ts';
import { adoptChannel, releaseChannel } from '../../src/protocol/channel-handoff.ts';
import type { MigrationChannel } from '../../src/protocol/channel.ts';
import { connectMigration } from '../../src/protocol/connect.ts';
import { ProtocolStateError } from '../../src/protocol/errors.ts';
import { MigrationListener, type ChannelSet } from '../../src/protocol/listener.ts';
import type { Message, MachineIdentity } from '../../src/protocol/messages.ts';
import { encodePages, maxPageFrameBytes } from '../../src/protocol/page-frame.ts';
import { pageIndex } from '../../src/protocol/layout.ts';
import { PollLoop } from '../../src/poll-loop.ts';
import { MigrationStateMachine } from '../../src/protocol/state.ts';
import { MAX_CONTROL_BYTES, MAX_PAGES_PER_FRAME } from '../../src/protocol/version.ts';
import { memoryLog } from './log-sink.ts';

const identity: MachineIdentity = { pageSize: 4096, ramBase: 0x8000_0000, ramSize: 256 * 4096, vcpus: 1, imageSha256: 'b'.repeat(64) };

function nextMessage(channel: MigrationChannel): Promise<Message> {
  return new Promise((resolve) => channel.onMessage(resolve));
}

describe('moving the urgent channel to another owner', () => {
  const { log } = memoryLog('warn');
  let listener: MigrationListener;
  let source: ChannelSet;
  let destination: ChannelSet;

  beforeEach(async () => {
    const destState = new MigrationStateMachine();
    listener = await MigrationListener.listen({ token: 'x'.repeat(32), pageSize: 4096, state: destState, log });
    const incoming = new Promise<ChannelSet>((resolve) => listener.onMigration((m) => resolve(m.channels)));
    source = await connectMigration({
      url: `ws://127.0.0.1:${listener.port}`,
      token: 'x'.repeat(32),
      session: generateSessionId(),
      identity,
      state: new MigrationStateMachine(),
      log,
    });
    destination = await incoming;
  });

  afterEach(async () => {
    for (const c of Object.values(source)) c.close();
    await listener.close();
  });

  it('carries page requests and pages both ways after both ends moved, and the old objects stay quiet', async () => {
    const destHandoff = await releaseChannel(destination.urgent, 'destination', Math.max(MAX_CONTROL_BYTES, maxPageFrameBytes(4096)));
    const sourceHandoff = await releaseChannel(source.urgent, 'source', MAX_CONTROL_BYTES);
    let oldClosed = false;
    destination.urgent.onClose(() => (oldClosed = true));
    source.urgent.onClose(() => (oldClosed = true));
    const loop = new PollLoop(log);
    const dest = adoptChannel(destHandoff, { state: 'postcopy-active' }, log, loop);
    const src = adoptChannel(sourceHandoff, { state: 'postcopy-active' }, log, loop);

    const request = nextMessage(src);
    dest.send({ type: 'page-request', pages: [pageIndex(7), pageIndex(9)] });
    expect(await request).toMatchObject({ type: 'page-request', pages: [7, 9] });

    const bytes = new Uint8Array(4096).fill(0xa5);
    const page = nextMessage(dest);
    src.sendBytes(encodePages(pageIndex(7), 1, bytes));
    const arrived = await page;
    expect(arrived).toMatchObject({ type: 'pages', start: 7, count: 1 });
    expect(Buffer.compare((arrived as { payload: Uint8Array }).payload, bytes)).toBe(0);

    const closed = new Promise<number>((resolve) => dest.onClose((code) => resolve(code)));
    src.close(1000, 'done');
    expect(await closed).toBe(1000);
    expect(oldClosed).toBe(false);
  });

  it('refuses to move a channel with bytes it has not read', async () => {
    destination.urgent.pause();
    const socket = (destination.urgent.ws as unknown as { _socket: { readableLength: number } })._socket;
    source.urgent.sendBytes(encodePages(pageIndex(1), 1, new Uint8Array(4096)));
    while (socket.readableLength === 0) await new Promise((resolve) => setImmediate(resolve));
    const err = await releaseChannel(destination.urgent, 'destination', MAX_CONTROL_BYTES).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ProtocolStateError);
    expect((err as Error).message).toMatch(/bytes arrived before the handover/);
  });

  it('delivers a burst larger than the socket buffers whole and in order, each send callback after its frame', async () => {
    const loop = new PollLoop(log);
    const dest = adoptChannel(await releaseChannel(destination.urgent, 'destination', maxPageFrameBytes(4096)), { state: 'postcopy-active' }, log, loop);
    const src = adoptChannel(await releaseChannel(source.urgent, 'source', MAX_CONTROL_BYTES), { state: 'postcopy-active' }, log, loop);
    // 4096 one-page frames, 16 MiB: more than loopback socket buffers hold at once.
    const frames = 4096;
    const pageCount = identity.ramSize / identity.pageSize;
    let arrived = 0;
    const all = new Promise<void>((resolve, reject) =>
      dest.onMessage((m) => {
        if (m.type !== 'pages' || m.start !== arrived % pageCount || !m.payload.every((b) => b === arrived % 251)) {
          reject(new Error(`frame ${arrived} arrived out of order or changed`));
          return;
        }
        if (++arrived === frames) resolve();
      }),
    );
    const written: number[] = [];
    let queuedAtMost = 0;
    for (let i = 0; i < frames; i++) {
      src.sendBytes(encodePages(pageIndex(i % pageCount), 1, new Uint8Array(4096).fill(i % 251)), (err) => {
        if (!err) written.push(i);
      });
      queuedAtMost = Math.max(queuedAtMost, src.bufferedAmount);
    }
    await all;
    // Some frames waited for POLLOUT, and every callback still fired once, in order.
    expect(queuedAtMost).toBeGreaterThan(0);
    expect(written).toEqual(Array.from({ length: frames }, (_, i) => i));
    expect(src.bufferedAmount).toBe(0);
  });

  it('reuses its read buffers for frames split across reads, never copies a frame, and every frame arrives intact', async () => {
    const loop = new PollLoop(log);
    const dest = adoptChannel(await releaseChannel(destination.urgent, 'destination', maxPageFrameBytes(4096)), { state: 'postcopy-active' }, log, loop);
    const src = adoptChannel(await releaseChannel(source.urgent, 'source', MAX_CONTROL_BYTES), { state: 'postcopy-active' }, log, loop);
    // 32 frames of the largest size, 256 pages (1 MiB): each spans several reads and slabs.
    const frames = 32;
    const pages = MAX_PAGES_PER_FRAME;
    const fill = (frame: number, page: number): number => (frame * 7 + page) % 251;
    const expected = Array.from({ length: 251 }, (_, v) => Buffer.alloc(4096, v));
    const allocations = vi.spyOn(Buffer, 'allocUnsafeSlow');
    let arrived = 0;
    const all = new Promise<void>((resolve, reject) =>
      dest.onMessage((m) => {
        // Checked while the listener runs: that is as long as a message's bytes are valid.
        const intact =
          m.type === 'pages' && m.count === pages && Array.from({ length: pages }, (_, p) => Buffer.compare(m.payload.subarray(p * 4096, (p + 1) * 4096), expected[fill(arrived, p)]) === 0).every(Boolean);
        if (!intact) {
          reject(new Error(`frame ${arrived} arrived changed`));
          return;
        }
        if (++arrived === frames) resolve();
      }),
    );
    for (let i = 0; i < frames; i++) {
      const payload = new Uint8Array(pages * 4096);
      for (let p = 0; p < pages; p++) payload.fill(fill(i, p), p * 4096, (p + 1) * 4096);
      src.sendBytes(encodePages(pageIndex(0), pages, payload));
    }
    // A frame joined from pieces would be copied into a buffer from here (ws's Receiver did so).
    const copies = vi.spyOn(Buffer, 'allocUnsafe');
    await all;
    const slabs = allocations.mock.calls.length;
    allocations.mockRestore();
    const frameCopies = copies.mock.calls.filter(([size]) => size >= 4096).length;
    copies.mockRestore();
    expect(frameCopies).toBe(0);
    // Without reuse, 32 MiB through 512 KiB slabs takes more than 64 of them;
    // a 1 MiB frame needs a slab of its own size.
    expect(slabs).toBeLessThanOrEqual(8);
  });

  it('closes with 1009 on a frame header longer than the limit, without waiting for its payload', async () => {
    const loop = new PollLoop(log);
    const dest = adoptChannel(await releaseChannel(destination.urgent, 'destination', maxPageFrameBytes(4096)), { state: 'postcopy-active' }, log, loop);
    const closed = new Promise<number>((resolve) => dest.onClose((code) => resolve(code)));
    const socket = (source.urgent.ws as unknown as { _socket: { write(b: Buffer): void } })._socket;
    // A masked binary frame announcing 2^40 bytes, then nothing more.
    socket.write(Buffer.from([0x82, 0xff, 0, 0, 0x01, 0, 0, 0, 0, 0, 1, 2, 3, 4]));
    expect(await closed).toBe(1009);
    expect(dest.open).toBe(false);
  });

  it('closes with 1002 on bytes that are not a WebSocket frame from a client, and the thread goes on', async () => {
    const loop = new PollLoop(log);
    const dest = adoptChannel(await releaseChannel(destination.urgent, 'destination', maxPageFrameBytes(4096)), { state: 'postcopy-active' }, log, loop);
    const closed = new Promise<number>((resolve) => dest.onClose((code) => resolve(code)));
    const peerClosed = new Promise<number>((resolve) => source.urgent.onClose((code) => resolve(code)));
    // An unmasked binary frame: a server must refuse it (RFC 6455 5.1).
    const socket = (source.urgent.ws as unknown as { _socket: { write(b: Buffer): void } })._socket;
    socket.write(Buffer.from([0x82, 0x02, 0x93, 0x01]));
    expect(await closed).toBe(1002);
    expect(await peerClosed).toBe(1002);
    expect(dest.open).toBe(false);
  });
});
