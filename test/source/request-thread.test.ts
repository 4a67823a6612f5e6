import type { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateSessionId, generateToken } from '../../src/protocol/auth.ts';
import { releaseChannel } from '../../src/protocol/channel-handoff.ts';
import { connectMigration } from '../../src/protocol/connect.ts';
import { ProtocolMalformedError } from '../../src/protocol/errors.ts';
import { pageIndex } from '../../src/protocol/layout.ts';
import { MigrationListener, type ChannelSet, type IncomingMigration } from '../../src/protocol/listener.ts';
import type { Message } from '../../src/protocol/messages.ts';
import { maxPageFrameBytes } from '../../src/protocol/page-frame.ts';
import { MigrationStateMachine } from '../../src/protocol/state.ts';
import { MAX_CONTROL_BYTES } from '../../src/protocol/version.ts';
import { PageServer } from '../../src/source/page-server.ts';
import { PushThread, RequestThread, type ServedChannel } from '../../src/source/page-thread.ts';
import { startWorker } from '../../src/worker.ts';
import { memoryLog } from '../protocol/log-sink.ts';
import type { FromPeer, PeerData, ToPeer } from './urgent-peer.ts';

const PAGE = 4096;
const PAGES = 64;
const ZERO_PAGE = 7;

/** Every page but ZERO_PAGE holds its own index + 1 in every byte. */
function sourceRam(): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(PAGES * PAGE);
  const bytes = new Uint8Array(buffer);
  for (let p = 0; p < PAGES; p++) if (p !== ZERO_PAGE) bytes.fill(p + 1, p * PAGE, (p + 1) * PAGE);
  return buffer;
}

function next<T extends FromPeer['type']>(peer: Worker, type: T): Promise<Extract<FromPeer, { type: T }>> {
  return new Promise((resolve) => {
    const onMessage = (m: FromPeer): void => {
      if (m.type !== type) return;
      peer.off('message', onMessage);
      resolve(m as Extract<FromPeer, { type: T }>);
    };
    peer.on('message', onMessage);
  });
}

describe('the source page-request thread', () => {
  const { log } = memoryLog('warn');
  let ram: SharedArrayBuffer;
  let listener: MigrationListener;
  let server: PageServer;
  let requests: RequestThread;
  let sourceState: MigrationStateMachine;
  let source: ChannelSet;
  let urgent: ServedChannel;
  let destination: ChannelSet;
  let peer: Worker;
  /** How many page frames the peer received; it notifies on every one. */
  let arrived: Int32Array;

  beforeEach(async () => {
    const token = generateToken();
    const destState = new MigrationStateMachine();
    listener = await MigrationListener.listen({ token, pageSize: PAGE, state: destState, log });
    const incoming = new Promise<IncomingMigration>((resolve) => listener.onMigration(resolve));
    ram = sourceRam();
    sourceState = new MigrationStateMachine();
    server = new PageServer({ ram: new Uint8Array(ram), pageSize: PAGE, log });
    requests = new RequestThread(log);
    requests.serve({ ram: { kind: 'shared', buffer: ram }, share: server.share, state: sourceState });
    source = await connectMigration({
      url: `ws://127.0.0.1:${listener.port}`,
      token,
      session: generateSessionId(),
      identity: { pageSize: PAGE, ramBase: 0x8000_0000, ramSize: PAGES * PAGE, vcpus: 1, imageSha256: '0'.repeat(64) },
      state: sourceState,
      log,
    });
    urgent = requests.adopt(source.urgent);
    destination = (await incoming).channels;
    // The destination's end on a thread of its own too: this thread will be blocked when the page arrives.
    const handoff = await releaseChannel(destination.urgent, 'destination', Math.max(MAX_CONTROL_BYTES, maxPageFrameBytes(PAGE)));
    const arrivedBuffer = new SharedArrayBuffer(4);
    arrived = new Int32Array(arrivedBuffer);
    peer = startWorker(new URL('./urgent-peer.ts', import.meta.url), { handoff, arrived: arrivedBuffer } satisfies PeerData, { name: 'urgent-peer' });
    await Promise.all([next(peer, 'ready'), requests.loaded()]);
    for (const state of [sourceState, destState]) {
      state.moveTo('device');
      state.moveTo('postcopy-active');
    }
  });

  afterEach(async () => {
    server.stop();
    for (const c of [source.control, source.bulk]) c.close();
    await requests.stop(1000, 'test over');
    await peer.terminate();
    await listener.close();
  });

  const ask = (pages: number[]): void => peer.postMessage({ type: 'request', pages: pages.map(pageIndex) } satisfies ToPeer);

  it('answers a page request while the main thread is blocked', async () => {
    const frame = next(peer, 'frame');
    ask([5]);
    // Blocked from before the request leaves until the page arrives: only
    // another thread can read the request and send the page meanwhile.
    expect(Atomics.wait(arrived, 0, 0, 10_000)).not.toBe('timed-out');
    const f = await frame;
    expect(f).toMatchObject({ kind: 'pages', start: 5, count: 1 });
    expect(Buffer.compare(f.payload!, new Uint8Array(ram, 5 * PAGE, PAGE))).toBe(0);
    expect(server.figures).toMatchObject({ postcopyRequests: 1, requestedPages: 1, urgentPages: 1, normalPages: 1, remainingPages: PAGES - 1 });
  });

  it('sends a zero page as a marker, and the bulk push goes on after the requested page', async () => {
    const frame = next(peer, 'frame');
    ask([ZERO_PAGE]);
    expect(await frame).toMatchObject({ kind: 'zero-run', start: ZERO_PAGE, count: 1, payload: null });
    expect(server.figures).toMatchObject({ zeroPages: 1, urgentPages: 1, remainingPages: PAGES - 1 });
    const firstBulk = new Promise<Message>((resolve) => destination.bulk.onMessage(resolve));
    const pushes = new PushThread(log);
    try {
      pushes.serve({ ram: { kind: 'shared', buffer: ram }, share: server.share, state: sourceState, ramAddress: undefined, maxPostcopyBandwidth: undefined });
      pushes.adopt(source.bulk);
      pushes.push();
      expect(await firstBulk).toMatchObject({ type: 'pages', start: ZERO_PAGE + 1 });
    } finally {
      await pushes.stop(1000, 'test over');
    }
  });

  it('reports its channel closed, with the protocol error when it refused a message', async () => {
    const closed = new Promise<Error | undefined>((resolve) => urgent.onClose((_code, _reason, error) => resolve(error)));
    const peerSaw = next(peer, 'closed');
    peer.postMessage({ type: 'garbage' } satisfies ToPeer);
    const error = await closed;
    expect(error).toBeInstanceOf(ProtocolMalformedError);
    expect((await peerSaw).code).toBe((error as ProtocolMalformedError).closeCode);
  });

  it('closes its channel and ends when stopped', async () => {
    const peerSaw = next(peer, 'closed');
    await requests.stop(1000, 'migration over');
    expect((await peerSaw).code).toBe(1000);
  });
});
