// A page frame sent as pieces (its header, then a view of RAM) arrives as one
// message, byte for byte, in order with frames sent whole: through ws's own
// socket on a main thread, and through a BlockingWebSocket on a page thread.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateSessionId } from '../../src/protocol/auth.ts';
import { adoptChannel, releaseChannel } from '../../src/protocol/channel-handoff.ts';
import type { MigrationChannel } from '../../src/protocol/channel.ts';
import { connectMigration } from '../../src/protocol/connect.ts';
import { pageIndex } from '../../src/protocol/layout.ts';
import { MigrationListener, type ChannelSet } from '../../src/protocol/listener.ts';
import type { MachineIdentity, Message } from '../../src/protocol/messages.ts';
import { encodePagesHeader, encodeZeroRun, maxPageFrameBytes } from '../../src/protocol/page-frame.ts';
import { MigrationStateMachine } from '../../src/protocol/state.ts';
import { MAX_CONTROL_BYTES } from '../../src/protocol/version.ts';
import { PollLoop } from '../../src/poll-loop.ts';
import { memoryLog } from './log-sink.ts';

const PAGE = 4096;
const PAGES = 256;
const identity: MachineIdentity = { pageSize: PAGE, ramBase: 0x8000_0000, ramSize: PAGES * PAGE, vcpus: 1, imageSha256: 'c'.repeat(64) };

/** Every page a different byte, so a run from the wrong place shows. */
const ram = new Uint8Array(PAGES * PAGE);
for (let p = 0; p < PAGES; p++) ram.fill(p, p * PAGE, (p + 1) * PAGE);

/** Runs of 1 page (a 16-bit frame length) and 64 pages (64-bit) and, after each, zero runs sent whole and in pieces (7-bit). */
async function sendAndCompare(src: MigrationChannel, dest: MigrationChannel): Promise<void> {
  const arrived: Message[] = [];
  const runs: [number, number][] = [
    [3, 1],
    [10, 64],
    [200, 2],
  ];
  const expected = runs.length * 3;
  const all = new Promise<void>((resolve, reject) => {
    dest.onMessage((m) => {
      // Payloads are views of the receiver's read buffers, valid while the listener runs.
      arrived.push(m.type === 'pages' ? { ...m, payload: Buffer.from(m.payload) } : m);
      if (arrived.length === expected) resolve();
    });
    dest.onClose((code, reason) => reject(new Error(`the receiving end closed (${code}): ${reason}`)));
  });
  const callbacks: (Error | undefined)[] = [];
  for (const [start, count] of runs) {
    src.sendPieces([encodePagesHeader(pageIndex(start), count), ram.subarray(start * PAGE, (start + count) * PAGE)], (err) => callbacks.push(err));
    src.sendBytes(encodeZeroRun(pageIndex(start + count), 1));
    src.sendPieces([encodeZeroRun(pageIndex(start + count + 1), 1)]);
  }
  await all;
  runs.forEach(([start, count], i) => {
    const [pages, whole, pieces] = arrived.slice(i * 3, i * 3 + 3);
    expect(pages).toMatchObject({ type: 'pages', start, count, precopy: false });
    expect(Buffer.compare((pages as { payload: Uint8Array }).payload, ram.subarray(start * PAGE, (start + count) * PAGE))).toBe(0);
    expect(whole).toMatchObject({ type: 'zero-run', start: start + count, count: 1 });
    expect(pieces).toMatchObject({ type: 'zero-run', start: start + count + 1, count: 1 });
  });
  while (callbacks.length < runs.length) await new Promise((resolve) => setImmediate(resolve));
  expect(callbacks).toEqual([undefined, undefined, undefined]);
}

describe('a message sent in pieces', () => {
  const { log } = memoryLog('warn');
  let listener: MigrationListener;
  let source: ChannelSet;
  let destination: ChannelSet;

  beforeEach(async () => {
    const destState = new MigrationStateMachine();
    const sourceState = new MigrationStateMachine();
    listener = await MigrationListener.listen({ token: 'y'.repeat(32), pageSize: PAGE, state: destState, log });
    const incoming = new Promise<ChannelSet>((resolve) => listener.onMigration((m) => resolve(m.channels)));
    source = await connectMigration({ url: `ws://127.0.0.1:${listener.port}`, token: 'y'.repeat(32), session: generateSessionId(), identity, state: sourceState, log });
    destination = await incoming;
    for (const state of [destState, sourceState]) {
      state.moveTo('device');
      state.moveTo('postcopy-active');
    }
  });

  afterEach(async () => {
    for (const c of Object.values(source)) c.close();
    await listener.close();
  });

  it("goes through ws's socket as one frame, in order with the frames ws writes", async () => {
    await sendAndCompare(source.bulk, destination.bulk);
  });

  it('goes through a page thread’s BlockingWebSocket as one frame, in order with whole ones', async () => {
    const loop = new PollLoop(log);
    const dest = adoptChannel(await releaseChannel(destination.urgent, 'destination', maxPageFrameBytes(PAGE)), { state: 'postcopy-active' }, log, loop);
    const src = adoptChannel(await releaseChannel(source.urgent, 'source', MAX_CONTROL_BYTES), { state: 'postcopy-active' }, log, loop);
    try {
      await sendAndCompare(src, dest);
    } finally {
      src.close();
    }
  });
});
