// Worker: the destination's end of an urgent channel, on a thread of its own,
// so pages reach it while the test's main thread is blocked. Counts each page
// frame in shared memory (waking the blocked thread) and reports it.
import { parentPort } from 'node:worker_threads';
import { adoptChannel, type ChannelHandoff } from '../../src/protocol/channel-handoff.ts';
import type { PageIndex } from '../../src/protocol/layout.ts';
import { PollLoop } from '../../src/poll-loop.ts';
import { workerPayload } from '../../src/worker.ts';
import { memoryLog } from '../protocol/log-sink.ts';

export interface PeerData {
  readonly handoff: ChannelHandoff;
  /** Int32 count of page frames received. */
  readonly arrived: SharedArrayBuffer;
}

export type ToPeer = { readonly type: 'request'; readonly pages: readonly PageIndex[] } | { readonly type: 'garbage' };

export type FromPeer =
  | { readonly type: 'ready' }
  | { readonly type: 'frame'; readonly kind: 'pages' | 'zero-run'; readonly start: number; readonly count: number; readonly payload: Uint8Array | null }
  | { readonly type: 'closed'; readonly code: number };

const { handoff, arrived } = workerPayload<PeerData>();
const port = parentPort!;
const post = (m: FromPeer): void => port.postMessage(m);
const count = new Int32Array(arrived);
const { log } = memoryLog('warn');
const channel = adoptChannel(handoff, { state: 'postcopy-active' }, log, new PollLoop(log));

channel.onMessage((m) => {
  if (m.type !== 'pages' && m.type !== 'zero-run') return;
  Atomics.add(count, 0, 1);
  Atomics.notify(count, 0);
  post({ type: 'frame', kind: m.type, start: m.start, count: m.count, payload: m.type === 'pages' ? m.payload.slice() : null });
});
channel.onClose((code) => {
  post({ type: 'closed', code });
  port.close();
});
port.on('message', (m: ToPeer) => {
  if (m.type === 'request') channel.send({ type: 'page-request', pages: m.pages });
  // A msgpack array header with too few elements: not a message.
  else channel.sendBytes(Buffer.from([0x93, 0x01]));
});
post({ type: 'ready' });
