// The source's request thread (QEMU's return-path thread): rehearses the
// fault path once loaded (fault-path-rehearsal.ts), then reads page
// requests from the urgent channel and answers them, so a request never waits
// for the main thread, which is busy with the background push and its
// garbage. It sleeps in poll(2) on its sockets (poll-loop.ts), not on an
// event loop. Guest RAM is a zero-copy view; the source's vCPUs are stopped in
// postcopy, so it does not change while pages are served.
import { parentPort } from 'node:worker_threads';
import { attachRam } from '../guest/ram.ts';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import { serveAfterRehearsal } from '../fault-path-rehearsal.ts';
import { PollLoop } from '../poll-loop.ts';
import { prioritizeThisThread, threadId } from '../thread-priority.ts';
import { threadLogger } from '../worker-log.ts';
import { CursorHint } from './cursor-hint.ts';
import { FrameSender } from './frame-sender.ts';
import type { FromRequestThread, RequestThreadData, ToRequestThread } from './request-thread-messages.ts';
import { RequestService } from './request-service.ts';
import { SharedMigrationState } from '../protocol/shared-state.ts';
import { TransferCounters } from './transfer-counters.ts';
import { UrgentQueue } from './urgent-queue.ts';

const port = parentPort!;
const post = (m: FromRequestThread): void => port.postMessage(m);

// Everything the thread does once a migration gave it RAM and the page server's shared set.
function serve(data: RequestThreadData): RequestService {
  const log = threadLogger(data.logLevel, 'requests', (line) => post({ type: 'log', line }));
  prioritizeThisThread(log);
  const { share } = data;
  const counters = TransferCounters.attach(share.counters);
  const frames = new FrameSender({
    ram: new Uint8Array(attachRam(data.ram).buffer, 0, share.pageCount * share.pageSize),
    pageSize: share.pageSize,
    sent: PageBitmap.attach(share.pageCount, share.sent),
    counters,
  });
  return new RequestService({
    queue: new UrgentQueue({ frames, counters, cursor: CursorHint.attach(share.cursor), pageCount: share.pageCount, highWaterMark: share.highWaterMark }),
    states: SharedMigrationState.attach(data.state),
    loop: new PollLoop(log),
    log,
    onChannelClosed: (id, code, reason, error) =>
      post({ type: 'channel-closed', id, code, reason, ...(error ? { error: { code: error.code, message: error.message } } : {}) }),
    onStopped: () => post({ type: 'stopped' }),
  });
}

let served: RequestService | undefined;

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
