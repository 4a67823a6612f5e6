// The source's request thread (QEMU's return-path thread): rehearses the
// fault path once loaded (fault-path-rehearsal.ts), then reads page
// requests from the urgent channel and answers them, so a request never waits
// for the main thread, which is busy with the background push and its
// garbage. It sleeps in poll(2) on its sockets (poll-loop.ts), not on an
// event loop. Guest RAM is a zero-copy view; the source's vCPUs are stopped in
// postcopy, so it does not change while pages are served.
import { parentPort } from 'node:worker_threads';
import { attachRam } from '../guest/ram.ts';
import type { MigrationChannel } from '../protocol/channel.ts';
import { adoptChannel, type ChannelHandoff } from '../protocol/channel-handoff.ts';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import { serveAfterRehearsal } from '../fault-path-rehearsal.ts';
import { PollLoop } from '../poll-loop.ts';
import { prioritizeThisThread, threadId } from '../thread-priority.ts';
import { threadLogger } from '../worker-log.ts';
import { CursorHint } from './cursor-hint.ts';
import { FrameSender } from './frame-sender.ts';
import type { FromRequestThread, RequestThreadData, ToRequestThread } from './request-thread-messages.ts';
import { SharedMigrationState } from '../protocol/shared-state.ts';
import { TransferCounters } from './transfer-counters.ts';
import { UrgentQueue } from './urgent-queue.ts';

const port = parentPort!;
const post = (m: FromRequestThread): void => port.postMessage(m);

interface Served {
  adopt(id: number, handoff: ChannelHandoff): void;
  closeChannel(id: number, code: number, reason: string): void;
  stop(code: number, reason: string): void;
}

// Everything the thread does once a migration gave it RAM and the page server's shared set.
function serve(data: RequestThreadData): Served {
  const log = threadLogger(data.logLevel, 'requests', (line) => post({ type: 'log', line }));
  prioritizeThisThread(log);
  const { share } = data;
  const loop = new PollLoop(log);
  const state = SharedMigrationState.attach(data.state);
  const counters = TransferCounters.attach(share.counters);
  const frames = new FrameSender({
    ram: new Uint8Array(attachRam(data.ram).buffer, 0, share.pageCount * share.pageSize),
    pageSize: share.pageSize,
    sent: PageBitmap.attach(share.pageCount, share.sent),
    counters,
  });
  const queue = new UrgentQueue({ frames, counters, cursor: CursorHint.attach(share.cursor), pageCount: share.pageCount, highWaterMark: share.highWaterMark });
  /** Channels not yet closed, by id; only the newest one is served. */
  const open = new Map<number, MigrationChannel>();
  let current: MigrationChannel | undefined;
  let stopping = false;

  return {
    adopt(id, handoff) {
      const channel = adoptChannel(handoff, () => state.state, log, loop);
      open.set(id, channel);
      current = channel;
      queue.attach(channel);
      channel.onMessage((m) => {
        if (m.type === 'page-request' && state.state === 'postcopy-active') queue.request(m.pages);
      });
      channel.onClose((code, reason, error) => {
        open.delete(id);
        if (current === channel) {
          current = undefined;
          queue.detach();
        }
        post({ type: 'channel-closed', id, code, reason, ...(error ? { error: { code: error.code, message: error.message } } : {}) });
        if (stopping && open.size === 0) post({ type: 'stopped' });
      });
    },
    closeChannel(id, code, reason) {
      open.get(id)?.close(code, reason);
    },
    stop(code, reason) {
      stopping = true;
      if (open.size === 0) post({ type: 'stopped' });
      for (const channel of open.values()) channel.close(code, reason);
    },
  };
}

let served: Served | undefined;

function handle(m: ToRequestThread): void {
  if (m.type === 'serve') {
    served = serve(m.data);
    return;
  }
  switch (m.type) {
    case 'channel':
      served!.adopt(m.id, m.handoff);
      break;
    case 'close-channel':
      served?.closeChannel(m.id, m.code, m.reason);
      break;
    case 'stop':
      if (served) served.stop(m.code, m.reason);
      else post({ type: 'stopped' });
      break;
  }
}

// The main thread sends 'serve' before any channel (RequestThread.adopt insists).
serveAfterRehearsal<ToRequestThread>(port, threadLogger('debug', 'requests', (line) => post({ type: 'log', line })), handle, () => post({ type: 'rehearsed' }));
post({ type: 'loaded', tid: threadId() });
