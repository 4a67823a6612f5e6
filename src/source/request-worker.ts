// The source's request thread (QEMU's return-path thread): rehearses the
// fault path once loaded (fault-path-rehearsal.ts), then reads page
// requests from the urgent channel and answers them, so a request never waits
// for the main thread or the push. It sleeps in poll(2) on its sockets
// (poll-loop.ts), not on an event loop. Guest RAM is a zero-copy view; the
// source's vCPUs are stopped in postcopy, so it does not change while pages
// are served.
import { PageBitmap } from '../protocol/page-bitmap.ts';
import { PollLoop } from '../poll-loop.ts';
import { SharedMigrationState } from '../protocol/shared-state.ts';
import { CursorHint } from './cursor-hint.ts';
import { FrameSender } from './frame-sender.ts';
import { runPageThread } from './page-thread-worker.ts';
import { RequestService } from './request-service.ts';
import { TransferCounters } from './transfer-counters.ts';
import { UrgentQueue } from './urgent-queue.ts';

runPageThread({
  name: 'requests',
  serve(data, { log, ramBytes, onChannelClosed, onStopped }) {
    const { share } = data;
    const counters = TransferCounters.attach(share.requestCounters);
    const frames = new FrameSender({
      ram: ramBytes(data.ram, share.pageCount * share.pageSize),
      pageSize: share.pageSize,
      sent: PageBitmap.attach(share.pageCount, share.sent),
      counters,
    });
    return new RequestService({
      queue: new UrgentQueue({ frames, counters, cursor: CursorHint.attach(share.cursor), pageCount: share.pageCount, highWaterMark: share.highWaterMark }),
      states: SharedMigrationState.attach(data.state),
      // Its work is all done in the loop: see PollLoopOptions.
      loop: new PollLoop(log, undefined, { chained: true }),
      log,
      onChannelClosed,
      onStopped,
    });
  },
});
